//! The frames between the daemon and an `sdk-worker` child ([`super::process`]).
//!
//! A frame is a little-endian `u32` length followed by that many bytes: a tag byte, then the
//! fields in order. Integers are little-endian; byte strings are a `u32` length and the bytes.
//! One request is answered by exactly one reply, in order, except [`Request::Close`] (no reply).
//! The channel is a private socketpair between the daemon and its own child: nothing else can
//! write to it, and the child's stdout (where the vendor SDK prints) is not the channel.

use std::io::{self, Read, Write};

use zeroize::Zeroizing;

/// The largest frame accepted (a `GetChatData` body of 1,000 huge records stays far below it).
pub const MAX_FRAME: usize = 1 << 30;

/// Bumped whenever a frame changes: parent and child are the same binary, but an upgrade may
/// replace the file between two child starts.
pub const VERSION: u32 = 1;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The peer closed the channel (the child died, or the parent went away).
    #[error("the channel was closed")]
    Closed,
    /// Reading or writing failed (a deadline passing shows as `TimedOut`/`WouldBlock`).
    #[error("channel I/O: {0}")]
    Io(#[from] io::Error),
    /// The bytes are not a frame of this protocol.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
}

impl WireError {
    /// True when a read deadline passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Io(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
    }
}

/// Network settings of one call, as sent to the child.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Net {
    /// Proxy URL, `""` for none.
    pub proxy: String,
    /// Proxy credentials, `""` for none (zeroized when dropped).
    pub passwd: Zeroizing<String>,
    /// The SDK timeout, seconds.
    pub timeout: i32,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net")
            .field("proxy", &crate::secret::redact_url(&self.proxy))
            .field("passwd", &if self.passwd.is_empty() { "" } else { "<redacted>" })
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What the daemon asks of a child. Its `Debug` never shows the secret, the key or the proxy
/// password.
#[derive(PartialEq, Eq)]
pub enum Request {
    /// `NewSdk` + `Init`: answered by [`Reply::Handle`] or [`Reply::Code`].
    Open {
        /// The corp.
        corpid: String,
        /// Its secret (zeroized when dropped).
        secret: Zeroizing<String>,
    },
    /// `DestroySdk` of a handle; no reply.
    Close {
        /// The handle.
        handle: u64,
    },
    /// `GetChatData`: answered by [`Reply::Body`] (the raw body) or [`Reply::Code`].
    Chat {
        /// The handle.
        handle: u64,
        /// Records after this seq.
        seq: u64,
        /// At most this many.
        limit: u32,
        /// Proxy and timeout.
        net: Net,
    },
    /// `GetMediaData`: answered by [`Reply::Chunk`] or [`Reply::Code`].
    Media {
        /// The handle.
        handle: u64,
        /// The media item.
        sdkfileid: String,
        /// The chunk index (`""` for the first).
        index: String,
        /// Proxy and timeout.
        net: Net,
    },
    /// `DecryptData`: answered by [`Reply::Body`] (the plaintext) or [`Reply::Code`].
    Decrypt {
        /// `encrypt_key` (zeroized when dropped).
        key: Zeroizing<String>,
        /// `encrypt_msg`.
        msg: String,
    },
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Open { corpid, .. } => {
                f.debug_struct("Open").field("corpid", corpid).field("secret", &"<redacted>").finish()
            }
            Request::Close { handle } => f.debug_struct("Close").field("handle", handle).finish(),
            Request::Chat { handle, seq, limit, net } => f
                .debug_struct("Chat")
                .field("handle", handle)
                .field("seq", seq)
                .field("limit", limit)
                .field("net", net)
                .finish(),
            Request::Media { handle, sdkfileid, index, net } => f
                .debug_struct("Media")
                .field("handle", handle)
                .field("sdkfileid", sdkfileid)
                .field("index", index)
                .field("net", net)
                .finish(),
            Request::Decrypt { msg, .. } => {
                f.debug_struct("Decrypt").field("key", &"<redacted>").field("msg_len", &msg.len()).finish()
            }
        }
    }
}

/// What a child answers.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// The first frame of a child: it loaded the library.
    Ready {
        /// [`VERSION`] of the child.
        version: u32,
    },
    /// The first frame of a child that could not load the library (then it exits).
    LoadFailed {
        /// What the loader said.
        reason: String,
    },
    /// A new handle.
    Handle(u64),
    /// The SDK returned this non-zero code.
    Code(i32),
    /// The call was refused before it reached the SDK, or named an unknown handle.
    Refused(String),
    /// A byte answer: a `GetChatData` body or a `DecryptData` plaintext.
    Body(Vec<u8>),
    /// One `GetMediaData` chunk.
    Chunk {
        /// The bytes.
        data: Vec<u8>,
        /// The next index.
        next_index: String,
        /// The last chunk.
        finish: bool,
    },
}

/// Builds a frame: room for the length, then the payload, encoded in place (a `GetChatData`
/// body of a few MB is copied once into the frame, not once into a payload and again into a
/// frame).
struct Out(Vec<u8>);

impl Out {
    /// An empty frame with room for `payload` bytes of payload.
    fn with_capacity(payload: usize) -> Self {
        let mut v = Vec::with_capacity(4 + payload);
        v.extend_from_slice(&[0; 4]);
        Self(v)
    }
    /// The frame with its length filled in.
    fn finish(mut self) -> Result<Vec<u8>, WireError> {
        let payload = self.0.len() - 4;
        let len = u32::try_from(payload).ok().filter(|n| (*n as usize) <= MAX_FRAME);
        let len = len.ok_or(WireError::Malformed("frame too large"))?;
        self.0[..4].copy_from_slice(&len.to_le_bytes());
        Ok(self.0)
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn i32(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(&mut self, v: &[u8]) -> &mut Self {
        // Every field is far below MAX_FRAME, which fits a u32.
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(v);
        self
    }
    fn net(&mut self, n: &Net) -> &mut Self {
        self.bytes(n.proxy.as_bytes()).bytes(n.passwd.as_bytes()).i32(n.timeout)
    }
}

/// Reads a frame's payload.
struct In<'a>(&'a [u8]);

impl<'a> In<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError::Malformed("a field runs past the end of its frame"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i32(&mut self) -> Result<i32, WireError> {
        let b = self.take(4)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Result<String, WireError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| WireError::Malformed("a text field is not UTF-8"))
    }
    fn net(&mut self) -> Result<Net, WireError> {
        Ok(Net { proxy: self.string()?, passwd: Zeroizing::new(self.string()?), timeout: self.i32()? })
    }
    fn end(&self) -> Result<(), WireError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(WireError::Malformed("bytes left after the last field"))
        }
    }
}

impl Request {
    fn encode(&self) -> Out {
        // Sized up front: a frame that grew by reallocation would leave copies of the secrets
        // it holds in freed memory, where zeroizing the final frame cannot reach them.
        let fields = match self {
            Request::Open { corpid, secret } => corpid.len() + secret.len(),
            Request::Close { .. } => 0,
            Request::Chat { net, .. } => net.proxy.len() + net.passwd.len(),
            Request::Media { sdkfileid, index, net, .. } => {
                sdkfileid.len() + index.len() + net.proxy.len() + net.passwd.len()
            }
            Request::Decrypt { key, msg } => key.len() + msg.len(),
        };
        let mut o = Out::with_capacity(64 + fields);
        match self {
            Request::Open { corpid, secret } => o.u8(1).bytes(corpid.as_bytes()).bytes(secret.as_bytes()),
            Request::Close { handle } => o.u8(2).u64(*handle),
            Request::Chat { handle, seq, limit, net } => o.u8(3).u64(*handle).u64(*seq).u32(*limit).net(net),
            Request::Media { handle, sdkfileid, index, net } => {
                o.u8(4).u64(*handle).bytes(sdkfileid.as_bytes()).bytes(index.as_bytes()).net(net)
            }
            Request::Decrypt { key, msg } => o.u8(5).bytes(key.as_bytes()).bytes(msg.as_bytes()),
        };
        o
    }

    fn decode(payload: &[u8]) -> Result<Self, WireError> {
        let mut i = In(payload);
        let r = match i.u8()? {
            1 => Request::Open { corpid: i.string()?, secret: Zeroizing::new(i.string()?) },
            2 => Request::Close { handle: i.u64()? },
            3 => Request::Chat { handle: i.u64()?, seq: i.u64()?, limit: i.u32()?, net: i.net()? },
            4 => Request::Media { handle: i.u64()?, sdkfileid: i.string()?, index: i.string()?, net: i.net()? },
            5 => Request::Decrypt { key: Zeroizing::new(i.string()?), msg: i.string()? },
            _ => return Err(WireError::Malformed("unknown request tag")),
        };
        i.end()?;
        Ok(r)
    }
}

impl Reply {
    fn encode(&self) -> Out {
        let big = match self {
            Reply::Body(b) | Reply::Chunk { data: b, .. } => b.len(),
            _ => 0,
        };
        let mut o = Out::with_capacity(64 + big);
        match self {
            Reply::Ready { version } => o.u8(1).u32(*version),
            Reply::LoadFailed { reason } => o.u8(2).bytes(reason.as_bytes()),
            Reply::Handle(h) => o.u8(3).u64(*h),
            Reply::Code(rc) => o.u8(4).i32(*rc),
            Reply::Refused(why) => o.u8(5).bytes(why.as_bytes()),
            Reply::Body(b) => o.u8(6).bytes(b),
            Reply::Chunk { data, next_index, finish } => {
                o.u8(7).bytes(data).bytes(next_index.as_bytes()).u8(u8::from(*finish))
            }
        };
        o
    }

    fn decode(payload: &[u8]) -> Result<Self, WireError> {
        let mut i = In(payload);
        let r = match i.u8()? {
            1 => Reply::Ready { version: i.u32()? },
            2 => Reply::LoadFailed { reason: i.string()? },
            3 => Reply::Handle(i.u64()?),
            4 => Reply::Code(i.i32()?),
            5 => Reply::Refused(i.string()?),
            6 => Reply::Body(i.bytes()?.to_vec()),
            7 => Reply::Chunk { data: i.bytes()?.to_vec(), next_index: i.string()?, finish: i.u8()? != 0 },
            _ => return Err(WireError::Malformed("unknown reply tag")),
        };
        i.end()?;
        Ok(r)
    }
}

/// Writes a whole frame ([`Out::finish`]) in one write: a frame is never interleaved with
/// anything.
fn write_frame(w: &mut impl Write, frame: &[u8]) -> Result<(), WireError> {
    w.write_all(frame).map_err(|e| if e.kind() == io::ErrorKind::BrokenPipe { WireError::Closed } else { e.into() })?;
    Ok(())
}

fn read_frame(r: &mut impl Read) -> Result<Zeroizing<Vec<u8>>, WireError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(WireError::Closed),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Err(WireError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(WireError::Malformed("frame too large"));
    }
    // Zeroized: request frames carry secrets.
    let mut payload = Zeroizing::new(vec![0u8; len]);
    r.read_exact(&mut payload).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => WireError::Closed,
        _ => e.into(),
    })?;
    Ok(payload)
}

/// Sends one request.
pub fn send_request(w: &mut impl Write, r: &Request) -> Result<(), WireError> {
    // Zeroized: request frames carry secrets.
    let frame = Zeroizing::new(r.encode().finish()?);
    write_frame(w, &frame)
}

/// Receives one request (`Err(Closed)` when the daemon closed the channel).
pub fn recv_request(r: &mut impl Read) -> Result<Request, WireError> {
    Request::decode(&read_frame(r)?)
}

/// Sends one reply.
pub fn send_reply(w: &mut impl Write, r: &Reply) -> Result<(), WireError> {
    write_frame(w, &r.encode().finish()?)
}

/// Receives one reply.
pub fn recv_reply(r: &mut impl Read) -> Result<Reply, WireError> {
    Reply::decode(&read_frame(r)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> Net {
        Net { proxy: "socks5://p:1".into(), passwd: Zeroizing::new("u:pw".into()), timeout: 7 }
    }

    #[test]
    fn every_frame_round_trips() {
        let requests = vec![
            Request::Open { corpid: "ww1".into(), secret: Zeroizing::new("s".into()) },
            Request::Close { handle: 9 },
            Request::Chat { handle: 1, seq: u64::MAX, limit: 1000, net: net() },
            Request::Media { handle: 2, sdkfileid: "Q2k=".into(), index: "Range:bytes=1-2".into(), net: net() },
            Request::Decrypt { key: Zeroizing::new("k".into()), msg: "m".into() },
        ];
        let mut buf = Vec::new();
        for r in &requests {
            send_request(&mut buf, r).unwrap();
        }
        let mut rd = buf.as_slice();
        for r in &requests {
            assert_eq!(&recv_request(&mut rd).unwrap(), r);
        }
        assert!(matches!(recv_request(&mut rd), Err(WireError::Closed)));
        let replies = vec![
            Reply::Ready { version: VERSION },
            Reply::LoadFailed { reason: "no such file".into() },
            Reply::Handle(3),
            Reply::Code(-10001),
            Reply::Refused("unknown handle".into()),
            Reply::Body(b"{}".to_vec()),
            Reply::Chunk { data: vec![0, 1, 2], next_index: "Range:bytes=3-4".into(), finish: true },
        ];
        let mut buf = Vec::new();
        for r in &replies {
            send_reply(&mut buf, r).unwrap();
        }
        let mut rd = buf.as_slice();
        for r in &replies {
            assert_eq!(&recv_reply(&mut rd).unwrap(), r);
        }
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let open = Request::Open { corpid: "ww1".into(), secret: Zeroizing::new("S3cretValue".into()) };
        let chat = Request::Chat { handle: 1, seq: 2, limit: 3, net: net() };
        let dec = Request::Decrypt { key: Zeroizing::new("KeyMaterial".into()), msg: "m".into() };
        let text = format!("{open:?} {chat:?} {dec:?}");
        assert!(!text.contains("S3cretValue") && !text.contains("u:pw") && !text.contains("KeyMaterial"), "{text}");
        assert!(text.contains("ww1"), "{text}");
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        for bad in [&[1u8, 0, 0, 0, 99][..], &[2, 0, 0, 0, 3, 1], &[8, 0, 0, 0, 3, 1, 0, 0, 0, 0, 0, 0]] {
            assert!(matches!(recv_reply(&mut &bad[..]), Err(WireError::Malformed(_))), "{bad:?}");
        }
        let huge = ((MAX_FRAME as u32) + 1).to_le_bytes();
        assert!(matches!(recv_request(&mut &huge[..]), Err(WireError::Malformed(_))));
        // A frame cut off in the middle: the peer died while writing.
        assert!(matches!(recv_reply(&mut &[8u8, 0, 0, 0, 6][..]), Err(WireError::Closed)));
    }
}
