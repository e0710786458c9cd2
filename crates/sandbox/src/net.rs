//! Small helpers shared by the emulators: loopback listeners on free ports.

use std::net::SocketAddr;

/// Binds a listener on 127.0.0.1 with a port the kernel picks, so that several sandboxes
/// (parallel tests, a second `sandbox up`) never collide.
pub async fn bind_loopback() -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await
}
