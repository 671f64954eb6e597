//! AF_XDP sockets and the poll loop that feeds the pipeline.
