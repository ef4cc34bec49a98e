//! Test tooling the origin's integration tests, the load tester's benchmark and the fault suite
//! share, so each exists once: starting an origin and waiting for it, a fresh PostgreSQL
//! database, free loopback ports, the machine's description, one HTTP/1.1 client, and a
//! latency-injecting TCP proxy for production-like database round trips.
