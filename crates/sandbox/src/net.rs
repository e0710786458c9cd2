//! Small helpers shared by the emulators: loopback listeners on free ports, accepted
//! connections without Nagle's delay, and the added latency of a remote call kept exact.

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

/// Waits the latency an emulator adds to a remote call, to within a fraction of a millisecond.
///
/// Tokio's timer works in whole milliseconds and rounds every deadline up to the next tick, so
/// `tokio::time::sleep(20 ms)` returns after 21–22 ms: 1.5 ms more per call than the bench says
/// it adds, which the bench would then charge to the function under test (four calls in sequence
/// make 6 ms). A blocking thread's `nanosleep` keeps to the high-resolution clock instead.
pub async fn added_latency(latency: std::time::Duration) {
    if latency.is_zero() {
        return;
    }
    let slept = tokio::task::spawn_blocking(move || std::thread::sleep(latency)).await;
    if slept.is_err() {
        // The blocking pool is shutting down with the emulator: the call it delays goes with it.
        tokio::time::sleep(latency).await;
    }
}

#[cfg(test)]
mod tests {
    use super::added_latency;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn added_latency_keeps_to_the_requested_time() {
        let latency = Duration::from_millis(20);
        let mut fastest = Duration::MAX;
        for _ in 0..10 {
            let started = Instant::now();
            added_latency(latency).await;
            let took = started.elapsed();
            assert!(took >= latency, "{took:?} is shorter than {latency:?}");
            fastest = fastest.min(took);
        }
        // A busy machine (a parallel test run) delays some wake-ups by milliseconds; the fastest
        // of ten shows what the wait itself adds.
        assert!(fastest < latency + Duration::from_millis(2), "{fastest:?}");
    }

    #[tokio::test]
    async fn no_latency_returns_at_once() {
        let started = Instant::now();
        added_latency(Duration::ZERO).await;
        assert!(started.elapsed() < Duration::from_millis(5));
    }
}
