//! Docker Engine API front end (in progress).
