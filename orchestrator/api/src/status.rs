//! The `Status` body every error response carries, as Kubernetes sends it.

use serde::{Deserialize, Serialize};

/// `{"kind": "Status", "status": "Failure", "reason": "Conflict", "code": 409, ...}`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Status {
    pub api_version: String,
    pub kind: String,
    /// `Success` or `Failure`.
    pub status: String,
    pub message: String,
    /// `BadRequest`, `NotFound`, `AlreadyExists`, `Conflict`, `Gone`,
    /// `Invalid`, `Unauthorized`, `Forbidden`, `RequestEntityTooLarge`,
    /// `MethodNotAllowed`, `UnsupportedMediaType`, `Timeout`,
    /// `ServiceUnavailable`, `InternalError`.
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    pub code: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatusDetails {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
}

/// One field error: `{"reason": "FieldValueRequired", "field": "spec.containers[0].image", ...}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatusCause {
    pub reason: String,
    pub message: String,
    pub field: String,
}

impl Status {
    /// A failure with `code`, `reason` and `message`.
    pub fn failure(code: u16, reason: &str, message: impl Into<String>) -> Status {
        Status {
            api_version: "v1".into(),
            kind: "Status".into(),
            status: "Failure".into(),
            message: message.into(),
            reason: reason.into(),
            details: None,
            code,
        }
    }

    pub fn success() -> Status {
        Status {
            api_version: "v1".into(),
            kind: "Status".into(),
            status: "Success".into(),
            code: 200,
            ..Default::default()
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Status {
        Status::failure(400, "BadRequest", message)
    }
    pub fn not_found(kind: &str, name: &str) -> Status {
        Status::failure(404, "NotFound", format!("{kind} {name:?} not found")).with_name(kind, name)
    }
    pub fn already_exists(kind: &str, name: &str) -> Status {
        Status::failure(
            409,
            "AlreadyExists",
            format!("{kind} {name:?} already exists"),
        )
        .with_name(kind, name)
    }
    pub fn conflict(kind: &str, name: &str, why: &str) -> Status {
        Status::failure(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {kind} {name:?}: {why}"),
        )
        .with_name(kind, name)
    }
    pub fn gone(message: impl Into<String>) -> Status {
        Status::failure(410, "Expired", message)
    }
    /// 422 with one cause per field error.
    pub fn invalid(kind: &str, name: &str, causes: Vec<StatusCause>) -> Status {
        let list: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let mut s = Status::failure(
            422,
            "Invalid",
            format!("{kind} {name:?} is invalid: {}", list.join(", ")),
        )
        .with_name(kind, name);
        if let Some(d) = s.details.as_mut() {
            d.causes = causes;
        }
        s
    }
    pub fn unauthorized() -> Status {
        Status::failure(
            401,
            "Unauthorized",
            "Unauthorized: a valid bearer token is required",
        )
    }
    pub fn forbidden(message: impl Into<String>) -> Status {
        Status::failure(403, "Forbidden", message)
    }
    pub fn unavailable(message: impl Into<String>) -> Status {
        Status::failure(503, "ServiceUnavailable", message)
    }
    pub fn timeout(message: impl Into<String>) -> Status {
        Status::failure(504, "Timeout", message)
    }

    fn with_name(mut self, kind: &str, name: &str) -> Status {
        self.details = Some(StatusDetails {
            name: name.to_string(),
            kind: kind.to_string(),
            ..Default::default()
        });
        self
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for Status {}
