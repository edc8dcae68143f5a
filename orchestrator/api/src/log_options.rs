//! `PodLogOptions`: what `kubectl logs` asks for (`follow`, `previous`,
//! `tailLines`, `sinceSeconds`/`sinceTime`, `limitBytes`, `timestamps`), as
//! the API server validates it and forwards it to the node's kubelet, which
//! applies it to the container's output.

/// A bad log request, in kube-apiserver's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadLogOptions(pub String);

/// What a reader asks for (Kubernetes' `PodLogOptions`, minus `container`,
/// which selects the buffer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodLogOptions {
    /// Keep streaming until the container exits.
    pub follow: bool,
    /// The previous (terminated) instance of the container.
    pub previous: bool,
    /// Only the last N lines.
    pub tail_lines: Option<u64>,
    /// Only lines written at or after this wall-clock time (from
    /// `sinceSeconds`, relative to the request's arrival, or `sinceTime`).
    pub since_ms: Option<u64>,
    /// Stop after this many bytes (possibly mid-line).
    pub limit_bytes: Option<u64>,
    /// Prefix every line with its RFC 3339 time (nanosecond precision).
    pub timestamps: bool,
}

impl PodLogOptions {
    /// Parses a query's log parameters (`follow`, `previous`, `tailLines`,
    /// `sinceSeconds`, `sinceTime`, `limitBytes`, `timestamps`; others are
    /// ignored) at wall-clock time `now_ms`.
    pub fn parse<'a>(
        query: impl IntoIterator<Item = (&'a str, &'a str)>,
        now_ms: u64,
    ) -> Result<PodLogOptions, BadLogOptions> {
        let bad = |m: String| Err(BadLogOptions(m));
        let flag = |k: &str, v: &str| match v {
            "" | "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(BadLogOptions(format!("{k}: {v:?} is not a boolean"))),
        };
        let number = |k: &str, v: &str| {
            v.parse::<i64>()
                .map_err(|_| BadLogOptions(format!("{k}: {v:?} is not an integer")))
        };
        let mut o = PodLogOptions::default();
        let (mut since_seconds, mut since_time) = (None, None);
        for (k, v) in query {
            match k {
                "follow" => o.follow = flag(k, v)?,
                "previous" => o.previous = flag(k, v)?,
                "timestamps" => o.timestamps = flag(k, v)?,
                "tailLines" => match number(k, v)? {
                    n if n < 0 => {
                        return bad(format!(
                            "tailLines: {n}: must be greater than or equal to 0"
                        ))
                    }
                    n => o.tail_lines = Some(n as u64),
                },
                "limitBytes" => match number(k, v)? {
                    n if n < 1 => return bad(format!("limitBytes: {n}: must be greater than 0")),
                    n => o.limit_bytes = Some(n as u64),
                },
                "sinceSeconds" => match number(k, v)? {
                    n if n < 1 => return bad(format!("sinceSeconds: {n}: must be greater than 0")),
                    n => since_seconds = Some(n as u64),
                },
                "sinceTime" => match crate::time::parse_ms(v) {
                    Some(ms) => since_time = Some(ms),
                    None => return bad(format!("sinceTime: {v:?} is not an RFC 3339 time")),
                },
                _ => {}
            }
        }
        o.since_ms = match (since_seconds, since_time) {
            (Some(_), Some(_)) => {
                return bad("at most one of sinceTime or sinceSeconds may be specified".into())
            }
            (Some(s), None) => Some(now_ms.saturating_sub(s.saturating_mul(1000))),
            (None, t) => t,
        };
        Ok(o)
    }

    /// The query string that asks for these options again (what the API
    /// server forwards to the kubelet), without `?`.
    pub fn to_query(&self) -> String {
        let mut q = Vec::new();
        if self.follow {
            q.push("follow=true".to_string());
        }
        if self.previous {
            q.push("previous=true".to_string());
        }
        if self.timestamps {
            q.push("timestamps=true".to_string());
        }
        if let Some(n) = self.tail_lines {
            q.push(format!("tailLines={n}"));
        }
        if let Some(n) = self.limit_bytes {
            q.push(format!("limitBytes={n}"));
        }
        if let Some(ms) = self.since_ms {
            // Milliseconds are kept: `parse_ms` reads fractions back.
            q.push(format!(
                "sinceTime={}",
                crate::time::rfc3339_micros(ms).replace(':', "%3A")
            ));
        }
        q.join("&")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_options_say_what_is_wrong() {
        let err = |q: &[(&str, &str)]| PodLogOptions::parse(q.iter().copied(), 0).unwrap_err().0;
        assert_eq!(
            err(&[("tailLines", "-1")]),
            "tailLines: -1: must be greater than or equal to 0"
        );
        assert_eq!(
            err(&[("limitBytes", "x")]),
            "limitBytes: \"x\" is not an integer"
        );
        assert_eq!(
            err(&[("sinceSeconds", "5"), ("sinceTime", "2026-12-07T00:00:00Z")]),
            "at most one of sinceTime or sinceSeconds may be specified"
        );
        assert_eq!(
            err(&[("follow", "maybe")]),
            "follow: \"maybe\" is not a boolean"
        );
    }

    #[test]
    fn options_survive_the_trip_to_the_kubelet() {
        let o = PodLogOptions::parse(
            [
                ("follow", "true"),
                ("previous", "1"),
                ("tailLines", "5"),
                ("limitBytes", "100"),
                ("sinceTime", "2026-12-07T15:42:08.5Z"),
                ("timestamps", "true"),
            ],
            0,
        )
        .unwrap();
        let q = o.to_query();
        let pairs: Vec<(String, String)> = q
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.replace("%3A", ":"))
            })
            .collect();
        let back =
            PodLogOptions::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), 0).unwrap();
        assert_eq!(back, o);
    }
}
