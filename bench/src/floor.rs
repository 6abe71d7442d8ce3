//! `floor-server`: the least work a Pusher server can do per delivery, as a yardstick for
//! latency on this machine.
//!
//! It speaks just enough of the protocol for the `fanout` scenario: the WebSocket handshake,
//! `pusher:connection_established`, `pusher:subscribe` answered with
//! `pusher_internal:subscription_succeeded`, and `POST /apps/{id}/events` (keep-alive,
//! answered `{}` with no signature check). An event is encoded once and written to every
//! subscriber of its channel by `--threads` fan-out threads, each doing one blocking
//! `write` per subscriber in a tight loop: no queues, no tasks, no wake-ups per connection.
//! Whatever latency `fanout --rate` measures against it is, almost entirely, what the
//! kernel's loopback path and the generator cost on this machine: a bound for any server that
//! sends each subscriber's frame with its own `write`/`send` call, as herald does.
//!
//! Not a server to use: no authentication, no unsubscribe, no liveness, subscribers are kept
//! until the process ends. Binds to 127.0.0.1 only.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{mpsc, Arc, RwLock};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Options of `floor-server`.
#[derive(Args, Debug, Clone)]
pub struct FloorArgs {
    /// Port on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// Fan-out threads; subscriber i is written by thread i mod N.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

/// Subscribers by channel name.
type Channels = Arc<RwLock<HashMap<String, Vec<TcpStream>>>>;

/// One event for the fan-out threads: the channel and its complete WebSocket frame.
type Job = Arc<(String, Vec<u8>)>;

/// Runs the floor server until the process is killed.
pub fn run(args: FloorArgs) -> Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", args.port))
        .with_context(|| format!("bind 127.0.0.1:{}", args.port))?;
    let channels: Channels = Arc::default();
    let threads = args.threads.max(1);
    let mut fan_out = Vec::with_capacity(threads);
    for index in 0..threads {
        let (tx, rx) = mpsc::channel::<Job>();
        let channels = channels.clone();
        std::thread::spawn(move || write_loop(index, threads, &channels, rx));
        fan_out.push(tx);
    }
    let fan_out = Arc::new(fan_out);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        let channels = channels.clone();
        let fan_out = fan_out.clone();
        std::thread::spawn(move || {
            let _ = serve(stream, &channels, &fan_out);
        });
    }
    Ok(())
}

/// Fan-out thread `index` of `threads`: writes each event to its share of the subscribers.
fn write_loop(index: usize, threads: usize, channels: &Channels, jobs: mpsc::Receiver<Job>) {
    for job in jobs {
        let (channel, frame) = &*job;
        let Ok(map) = channels.read() else { return };
        if let Some(subscribers) = map.get(channel) {
            for mut subscriber in subscribers.iter().skip(index).step_by(threads) {
                let _ = subscriber.write_all(frame);
            }
        }
    }
}

/// One accepted connection: a WebSocket subscriber or an HTTP API client.
fn serve(stream: TcpStream, channels: &Channels, fan_out: &[mpsc::Sender<Job>]) -> Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let Some(head) = read_head(&mut reader)? else {
            return Ok(());
        };
        if let Some(key) = head.header("sec-websocket-key") {
            let accept = derive_accept_key(key.as_bytes());
            write!(
                writer,
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            )?;
            return subscriber(reader, writer, channels);
        }
        let length: usize = head
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let (status, reply) = match trigger(&head.target, &body, fan_out) {
            Ok(()) => ("200 OK", "{}".to_owned()),
            Err(e) => ("400 Bad Request", format!("{e:#}")),
        };
        write!(
            writer,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        )?;
    }
}

/// A request line's target and its headers (names lower-cased).
struct Head {
    target: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one HTTP request head; `None` at end of stream.
fn read_head(reader: &mut impl BufRead) -> Result<Option<Head>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            bail!("end of stream in request head");
        }
        let line = line.trim_end();
        if line.is_empty() {
            return Ok(Some(Head { target, headers }));
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
}

/// `POST /apps/{id}/events`: encodes the event once per channel and hands it to every
/// fan-out thread.
fn trigger(target: &str, body: &[u8], fan_out: &[mpsc::Sender<Job>]) -> Result<()> {
    let path = target.split('?').next().unwrap_or("");
    if !path.ends_with("/events") {
        bail!("only POST /apps/{{id}}/events is served");
    }
    let event: serde_json::Value = serde_json::from_slice(body).context("body is not JSON")?;
    let name = event["name"].as_str().context("no name")?;
    let data = event["data"].as_str().context("data is not a string")?;
    let channels: Vec<&str> = match (&event["channel"], &event["channels"]) {
        (serde_json::Value::String(c), _) => vec![c.as_str()],
        (_, serde_json::Value::Array(list)) => list.iter().filter_map(|c| c.as_str()).collect(),
        _ => bail!("no channel"),
    };
    for channel in channels {
        let payload = serde_json::json!({ "event": name, "channel": channel, "data": data });
        let job: Job = Arc::new((
            channel.to_owned(),
            text_frame(payload.to_string().as_bytes()),
        ));
        for thread in fan_out {
            let _ = thread.send(job.clone());
        }
    }
    Ok(())
}

/// A WebSocket subscriber after the handshake: `connection_established`, then client frames
/// until a `pusher:subscribe`, which registers the socket for writing. Reading stops there.
fn subscriber(
    mut reader: BufReader<TcpStream>,
    mut writer: TcpStream,
    channels: &Channels,
) -> Result<()> {
    let established = serde_json::json!({
        "event": "pusher:connection_established",
        "data": serde_json::json!({ "socket_id": "1.1", "activity_timeout": 120 }).to_string(),
    });
    writer.write_all(&text_frame(established.to_string().as_bytes()))?;
    loop {
        let payload = read_client_frame(&mut reader)?;
        let Ok(message) = serde_json::from_slice::<serde_json::Value>(&payload) else {
            continue;
        };
        match message["event"].as_str() {
            Some("pusher:subscribe") => {
                let channel = message["data"]["channel"]
                    .as_str()
                    .context("subscribe without channel")?
                    .to_owned();
                let succeeded = serde_json::json!({
                    "event": "pusher_internal:subscription_succeeded",
                    "channel": channel,
                    "data": "{}",
                });
                writer.write_all(&text_frame(succeeded.to_string().as_bytes()))?;
                let mut map = channels
                    .write()
                    .map_err(|_| anyhow::anyhow!("lock poisoned"))?;
                map.entry(channel).or_default().push(writer);
                return Ok(());
            }
            Some("pusher:ping") => {
                writer.write_all(&text_frame(br#"{"event":"pusher:pong","data":"{}"}"#))?;
            }
            _ => {}
        }
    }
}

/// A server-to-client text frame (one fragment).
fn text_frame(payload: &[u8]) -> Vec<u8> {
    crate::wire::unmasked_frame(true, 0x1, payload)
}

/// Reads one client frame and returns its unmasked payload (fragments are not joined: the
/// benchmark's clients send small single-frame messages).
fn read_client_frame(reader: &mut impl Read) -> Result<Vec<u8>> {
    let mut head = [0u8; 2];
    reader.read_exact(&mut head)?;
    let masked = head[1] & 0x80 != 0;
    let length = match head[1] & 0x7f {
        126 => {
            let mut ext = [0u8; 2];
            reader.read_exact(&mut ext)?;
            u16::from_be_bytes(ext) as usize
        }
        127 => {
            let mut ext = [0u8; 8];
            reader.read_exact(&mut ext)?;
            usize::try_from(u64::from_be_bytes(ext))?
        }
        n => n as usize,
    };
    if length > 1 << 20 {
        bail!("client frame of {length} bytes");
    }
    let mut mask = [0u8; 4];
    if masked {
        reader.read_exact(&mut mask)?;
    }
    let mut payload = vec![0; length];
    reader.read_exact(&mut payload)?;
    if masked {
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_the_client_reader() {
        // A masked client frame of 300 bytes (16-bit length form).
        let payload: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![0x81, 0x80 | 126];
        frame.extend_from_slice(&300u16.to_be_bytes());
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        assert_eq!(read_client_frame(&mut frame.as_slice()).unwrap(), payload);

        let short = text_frame(b"hi");
        assert_eq!(short, vec![0x81, 2, b'h', b'i']);
        assert_eq!(read_client_frame(&mut short.as_slice()).unwrap(), b"hi");
    }

    #[test]
    fn trigger_encodes_once_per_channel_for_every_thread() {
        let (tx1, rx1) = mpsc::channel();
        let (tx2, rx2) = mpsc::channel();
        let body = br#"{"name":"e","channels":["a","b"],"data":"x"}"#;
        trigger("/apps/1/events?auth_key=k", body, &[tx1, tx2]).unwrap();
        let jobs: Vec<Job> = rx1.try_iter().collect();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].0, "a");
        assert_eq!(
            &jobs[0].1[2..],
            br#"{"channel":"a","data":"x","event":"e"}"#.as_slice()
        );
        assert!(Arc::ptr_eq(&jobs[1], &rx2.try_iter().nth(1).unwrap()));
        assert!(trigger("/apps/1/channels", body, &[]).is_err());
    }
}
