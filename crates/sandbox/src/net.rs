//! Small helpers shared by the emulators: loopback listeners on free ports, and accepted
//! connections without Nagle's delay.

use std::net::SocketAddr;

/// Binds a listener on 127.0.0.1 with a port the kernel picks, so that several sandboxes
/// (parallel tests, a second `sandbox up`) never collide.
pub async fn bind_loopback() -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// Turns Nagle's algorithm off on an accepted connection. An emulator writes a response's
/// head and body separately; with Nagle the body waits for the client's ACK of the head, which
/// a client on a kept-alive connection delays by up to 40 ms: a stall real endpoints do not
/// have, and one that would show in every latency the bench measures.
pub fn no_delay(stream: &tokio::net::TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "TCP_NODELAY not set");
    }
}
