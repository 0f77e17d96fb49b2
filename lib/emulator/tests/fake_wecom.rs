//! The `fake-wecom` binary, driven by an independent client (rustls, not the vendor SDK): the
//! proxy step (407 without the configured credentials, 200 with them), TLS with the DEMO-ONLY
//! certificate for `qyapi.weixin.qq.com`, and the three calls with their rules: gettoken checks
//! the secret, getchatdata checks the token's `encrypt_sign` and answers seq+1..=seq+limit, and
//! getchatmediadata answers AES-128-ECB/PKCS#7 ciphertext slices whose decryption is the file.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::cipher::{DecryptingKey, UnboundCipherKey, AES_128};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::{json, Value};
use WeWorkFinanceSdk_C::api::{encrypt_sign, sdkfileid_parts, DEMO_CERT_PEM, HOST, MEDIA_CHUNK};
use WeWorkFinanceSdk_C::{Emulator, DEMO_CORPID, DEMO_SECRET};

const CREDENTIALS: &str = "audit:secret-proxy";

/// Accepts exactly the DEMO-ONLY certificate for [`HOST`], checking the handshake signatures.
#[derive(Debug)]
struct DemoCertOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for DemoCertOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let demo = CertificateDer::from_pem_slice(DEMO_CERT_PEM.as_bytes()).unwrap();
        assert_eq!(server_name.to_str(), HOST);
        if end_entity.as_ref() == demo.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the DEMO-ONLY certificate".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fake-wecom"))
        .args(["--listen", "127.0.0.1:0", "--proxy-auth", CREDENTIALS])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("{line:?}")).parse().unwrap();
    Server { child, addr }
}

/// Reads an HTTP head (up to the blank line) byte by byte.
fn read_head(r: &mut impl Read) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(r.read(&mut b).unwrap(), 1, "connection closed inside the head: {head:?}");
        head.push(b[0]);
    }
    String::from_utf8(head).unwrap()
}

fn connect(addr: SocketAddr, credentials: Option<&str>) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth =
        credentials.map(|c| format!("Proxy-Authorization: Basic {}\r\n", STANDARD.encode(c))).unwrap_or_default();
    write!(tcp, "CONNECT {HOST}:443 HTTP/1.1\r\nHost: {HOST}:443\r\n{auth}\r\n").unwrap();
    let head = read_head(&mut tcp);
    (tcp, head)
}

/// One HTTPS request through the proxy: (response head, body).
fn https(addr: SocketAddr, request: &str) -> (String, Vec<u8>) {
    let (tcp, head) = connect(addr, Some(CREDENTIALS));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(DemoCertOnly(provider)))
        .with_no_client_auth();
    let conn = rustls::ClientConnection::new(Arc::new(config), ServerName::try_from(HOST).unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(request.as_bytes()).unwrap();
    let head = read_head(&mut tls);
    let mut body = Vec::new();
    tls.read_to_end(&mut body).unwrap();
    (head, body)
}

fn post(addr: SocketAddr, call: &str, token: &str, extra: &str, body: &Value) -> (String, Value) {
    let body = body.to_string();
    let (head, raw) = https(
        addr,
        &format!(
            "POST /cgi-bin/message/{call}?access_token={token} HTTP/1.0\r\nHost: {HOST}\r\n{extra}\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    (head, serde_json::from_slice(&raw).unwrap())
}

fn gettoken(addr: SocketAddr, secret: &str) -> Value {
    let (head, body) = https(
        addr,
        &format!("GET /cgi-bin/gettoken?corpid={DEMO_CORPID}&corpsecret={secret} HTTP/1.0\r\nHost: {HOST}\r\n\r\n"),
    );
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    serde_json::from_slice(&body).unwrap()
}

fn ecb_decrypt(key: &[u8; 16], content: &str) -> Vec<u8> {
    let mut buf = STANDARD.decode(content).unwrap();
    let key = DecryptingKey::ecb(UnboundCipherKey::new(&AES_128, key).unwrap()).unwrap();
    key.decrypt(&mut buf, aws_lc_rs::cipher::DecryptionContext::None).unwrap();
    buf
}

#[test]
fn the_binary_speaks_the_proxy_tls_and_the_three_calls() {
    let server = start();
    for wrong in [None, Some("audit:wrong")] {
        let (_, head) = connect(server.addr, wrong);
        assert!(head.starts_with("HTTP/1.1 407"), "{wrong:?}: {head}");
    }

    assert_eq!(gettoken(server.addr, "not-the-secret")["errcode"], 40001);
    let token = gettoken(server.addr, DEMO_SECRET);
    assert_eq!((token["errcode"].as_i64(), token["expires_in"].as_i64()), (Some(0), Some(7200)));
    let token = token["access_token"].as_str().unwrap().to_string();

    // getchatdata: the sign is checked; the page is seq+1..=seq+limit.
    let sign = encrypt_sign(&token).to_string();
    let (_, bad) =
        post(server.addr, "getchatdata", &token, "", &json!({"seq": 0, "limit": 3, "version": 3, "encrypt_sign": "1"}));
    assert_ne!(bad["errcode"], 0, "a wrong encrypt_sign is refused");
    let (_, page) = post(
        server.addr,
        "getchatdata",
        &token,
        "",
        &json!({"seq": 4, "limit": 3, "version": 3, "encrypt_sign": sign}),
    );
    assert_eq!(page["errcode"], 0);
    let seqs: Vec<u64> = page["chatdata"].as_array().unwrap().iter().map(|c| c["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [5, 6, 7]);
    let (_, unknown) =
        post(server.addr, "getchatdata", "NOT_A_TOKEN", "", &json!({"seq": 0, "limit": 1, "encrypt_sign": sign}));
    assert_eq!(unknown["errcode"], 40014);

    // getchatmediadata: the 3 MiB file of the demo, first and last chunk.
    let emu = Emulator::demo();
    let big = emu.truth(DEMO_CORPID).into_iter().flat_map(|t| t.media).max_by_key(|m| m.size).unwrap();
    let plain = emu.media_bytes(&big.sdkfileid).unwrap();
    let (fileid, authkey, key) = sdkfileid_parts(&big.sdkfileid).unwrap();
    let total = (plain.len() as u64 / 16 + 1) * 16;
    let media = |a: u64| {
        post(
            server.addr,
            "getchatmediadata",
            &token,
            &format!("Range: bytes={a}-{}\r\n", a + MEDIA_CHUNK - 1),
            &json!({"fileid": fileid, "authkey": authkey, "version": 3}),
        )
    };
    let (head, first) = media(0);
    assert!(head.contains(&format!("\r\nCONTENT-RANGE: BYTES 0-{}/{total}\r\n", MEDIA_CHUNK - 1)), "{head}");
    assert_eq!(ecb_decrypt(&key, first["content"].as_str().unwrap()), plain[..MEDIA_CHUNK as usize]);
    let last = (total - 1) / MEDIA_CHUNK * MEDIA_CHUNK;
    let (head, tail) = media(last);
    assert!(head.contains(&format!("\r\nCONTENT-RANGE: BYTES {last}-{}/{total}\r\n", total - 1)), "{head}");
    let mut decrypted = ecb_decrypt(&key, tail["content"].as_str().unwrap());
    let pad = *decrypted.last().unwrap() as usize;
    assert!((1..=16).contains(&pad));
    decrypted.truncate(decrypted.len() - pad);
    assert_eq!(decrypted, plain[last as usize..]);
    let (_, wrong) = post(
        server.addr,
        "getchatmediadata",
        &token,
        "Range: bytes=0-524287\r\n",
        &json!({"fileid": fileid, "authkey": "not-the-authkey", "version": 3}),
    );
    assert_ne!(wrong["errcode"], 0, "a wrong authkey finds nothing");
}
