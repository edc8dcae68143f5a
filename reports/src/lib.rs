//! Turning a run into summary.json, JUnit and plots.
