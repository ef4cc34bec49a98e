//! Free loopback ports for servers that must be told their address before they start (a
//! process under test, HAProxy's frontends, an address nobody answers on).

use std::net::SocketAddr;

use crate::Error;

/// A loopback address nobody listens on right now: the kernel's choice, released at once. On
/// loopback nothing else races for it between here and the server's bind. (A server started in
/// this process binds `127.0.0.1:0` itself and needs no such address.)
pub fn free_addr() -> Result<SocketAddr, Error> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| Error::io("no free loopback port", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_bindable_and_on_loopback() {
        let addr = free_addr().unwrap();
        assert!(addr.ip().is_loopback() && addr.port() != 0);
        std::net::TcpListener::bind(addr).expect("nobody holds it");
    }
}
