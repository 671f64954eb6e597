//! Fixture tables shared by the XDP tests, the userspace pipeline tests and the benches.
