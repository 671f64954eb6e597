//! Network namespaces and veth pairs for kernel tests.
