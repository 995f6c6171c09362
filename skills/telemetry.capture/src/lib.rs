//! telemetry-capture / telemetry-query library.
