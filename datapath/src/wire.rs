//! Zero-copy header views (smoltcp style): `new_checked`, then accessors never panic.
