//! Image store: registry pulls into read-only layer disks on the datastore (in progress).
