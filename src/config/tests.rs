use super::*;

#[test]
fn mp3_settings_are_checked() {
    let err = Config::from_parts("[media]\nmp3_sample_rate = 44000\n", None, []).unwrap_err();
    assert!(err.to_string().contains("line 2: media.mp3_sample_rate: expected 0"), "{err}");
    assert!(!err.to_string().contains("44000"), "{err}");
    let err = Config::from_parts("[media]\nmp3_bitrate = 0\n", None, []).unwrap_err();
    assert!(err.to_string().contains("media.mp3_bitrate: expected 8..=320"), "{err}");
    let err = Config::from_parts("[media]\nmp3_quality = 10\n", None, []).unwrap_err();
    assert!(err.to_string().contains("media.mp3_quality: expected 0"), "{err}");
    let ok = Config::from_parts("[media]\nmp3_sample_rate = 16000\nmp3_bitrate = 48\n", None, []).unwrap();
    assert_eq!((ok.media.mp3_sample_rate, ok.media.mp3_bitrate), (16000, 48));
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn defaults_match_example_toml() {
    let example = include_str!("../../config/example.toml");
    let from_file = Config::from_parts(example, None, env(&[])).expect("example.toml parses");
    let defaults = Config::default();
    assert_eq!(format!("{from_file:?}"), format!("{defaults:?}"), "config/example.toml must show the defaults");
}

/// Issue 13 point 5: every key of `config/example.toml` is one the configuration reads (the
/// file parses, unknown keys being errors: `defaults_match_example_toml`), and, set alone to
/// another value, changes the loaded configuration.
#[test]
fn every_documented_key_changes_the_configuration() {
    let example: toml::Table = include_str!("../../config/example.toml").parse().unwrap();
    // Debug redacts secrets: add them in clear (this is a test).
    let seen = |c: &Config| {
        format!(
            "{c:?} {} {} {} {}",
            c.database.url.expose(),
            c.sdk.proxy_password.expose(),
            c.media.s3_access_key_id.expose(),
            c.media.s3_secret_access_key.expose()
        )
    };
    let defaults = seen(&Config::default());
    let mut keys = 0;
    for (key, section, value) in example_keys(&example) {
        let other = match (key.as_str(), value) {
            ("log.format", _) => "\"json\"".to_string(),
            ("media.backend", _) => "\"s3\"\ns3_endpoint = \"http://s3\"\ns3_bucket = \"b\"".to_string(),
            ("http.listen" | "callback.listen", _) => "\"127.0.0.1:9\"".to_string(),
            ("http.public_url", _) => "\"https://audit.example.com\"".to_string(),
            ("media.mp3_sample_rate", _) => "8000".to_string(),
            (_, toml::Value::String(s)) if humantime::parse_duration(s).is_ok() => "\"7s 3ms\"".to_string(),
            (_, toml::Value::String(s)) => toml::Value::String(format!("{s}x")).to_string(),
            (_, toml::Value::Integer(n)) => (n + 1).to_string(),
            (_, toml::Value::Boolean(b)) => (!b).to_string(),
            (_, toml::Value::Array(a)) if !a.is_empty() => "[]".to_string(),
            (_, other) => panic!("{key}: no other value for {other}"),
        };
        let name = key.rsplit('.').next().unwrap_or_default();
        let text = format!("[{section}]\n{name} = {other}\n");
        let cfg = Config::from_parts(&text, None, env(&[])).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_ne!(seen(&cfg), defaults, "{key} = {other} does not change the configuration");
        keys += 1;
    }
    assert!(keys > 40, "only {keys} keys in example.toml");
}

/// Issue 13 point 5: every key of `config/example.toml` is read by something outside this
/// module: `section.key` (`cfg.sdk.threads`), or `alias.key` after `let alias = &cfg.section;` or
/// in a function with a parameter `alias: &SectionConfig`, as a field (not a method call) somewhere else in `src/`.
#[test]
fn every_documented_key_is_read_outside_the_config_module() {
    let example: toml::Table = include_str!("../../config/example.toml").parse().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && path != src.join("config") {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                sources.push(std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    assert!(sources.len() > 50, "{} source files", sources.len());
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    // `name.key` as a whole word, not followed by a call.
    let reads = |text: &str, name: &str, key: &str| {
        let pattern = format!("{name}.{key}");
        text.match_indices(&pattern).any(|(at, _)| {
            let before = text[..at].chars().next_back().unwrap_or(' ');
            let after = text[at + pattern.len()..].chars().next().unwrap_or(' ');
            !ident(before) && !ident(after) && after != '('
        })
    };
    let unread: Vec<String> = example_keys(&example)
        .into_iter()
        .filter(|(key, section, _)| {
            let field = key.rsplit('.').next().unwrap_or_default();
            !sources.iter().any(|text| {
                let aliases = text.lines().filter_map(|line| {
                    let line = line.trim().strip_prefix("let ")?.trim_start_matches("mut ");
                    let (alias, value) = line.split_once(" = ")?;
                    value.ends_with(&format!(".{section};")).then_some(alias)
                });
                // A parameter of the section's type: `m: &MediaConfig`.
                let section_type = format!(": &{}config", section.replace('_', ""));
                let params = text.match_indices(':').filter_map(|(at, _)| {
                    let rest = &text[at..];
                    let ty: String =
                        rest.chars().take_while(|c| *c == ':' || *c == ' ' || *c == '&' || ident(*c)).collect();
                    (ty.to_lowercase() == section_type).then(|| {
                        let name: String = text[..at]
                            .chars()
                            .rev()
                            .take_while(|c| ident(*c))
                            .collect::<Vec<_>>()
                            .into_iter()
                            .rev()
                            .collect();
                        name
                    })
                });
                reads(text, section, field)
                    || aliases.into_iter().any(|a| reads(text, a, field))
                    || params.into_iter().any(|a| !a.is_empty() && reads(text, &a, field))
            })
        })
        .map(|(key, _, _)| key)
        .collect();
    assert!(unread.is_empty(), "documented in config/example.toml but read nowhere: {unread:?}");
}

/// `(section.key, section, value)` of every key of `example`.
fn example_keys(example: &toml::Table) -> Vec<(String, String, &toml::Value)> {
    let mut out = Vec::new();
    for (section, table) in example {
        let toml::Value::Table(table) = table else { panic!("{section} is not a section") };
        out.extend(table.iter().map(|(key, value)| (format!("{section}.{key}"), section.clone(), value)));
    }
    out
}

#[test]
fn environment_overrides_the_file_with_types() {
    let text = "[database]\nurl = \"sqlite://a.db\"\n[pull]\nlimit = 100\n";
    let cfg = Config::from_parts(
        text,
        None,
        env(&[
            ("WEWORK_MSGAUDIT__DATABASE__URL", "mysql://u:pw@db/x"),
            ("WEWORK_MSGAUDIT__PULL__LIMIT", "500"),
            ("WEWORK_MSGAUDIT__PULL__POLL_INTERVAL", "250ms"),
            ("WEWORK_MSGAUDIT__CORPS__TABLE", "false"),
            ("UNRELATED", "x"),
        ]),
    )
    .unwrap();
    assert_eq!(cfg.database.url.expose(), "mysql://u:pw@db/x");
    assert_eq!(cfg.pull.limit, 500);
    assert_eq!(cfg.pull.poll_interval, Duration::from_millis(250));
    assert!(!cfg.corps.table);
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let err = Config::from_parts("[pull]\nlimt = 5\n", Some(Path::new("x.toml")), env(&[])).unwrap_err();
    assert!(err.to_string().contains("limt") && err.to_string().contains("x.toml"), "{err}");
    let err = Config::from_parts("", None, env(&[("WEWORK_MSGAUDIT__PULL__NOPE", "1")])).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    let err = Config::from_parts("[nosuch]\n", Some(Path::new("x.toml")), env(&[])).unwrap_err();
    assert!(err.to_string().contains("x.toml:1: nosuch: unknown field `nosuch`"), "{err}");
    let err = Config::from_parts("", None, env(&[("WEWORK_MSGAUDIT__PULL", "1")])).unwrap_err();
    assert!(matches!(err, ConfigError::BadEnv(_)), "{err}");
    let err = Config::from_parts("[pull]\npoll_interval = \"soon\"\n", None, env(&[])).unwrap_err();
    assert!(err.to_string().contains("soon") || err.to_string().contains("poll_interval"), "{err}");
}

#[test]
fn secrets_are_redacted_in_debug() {
    let text = "[database]\nurl = \"mysql://archiver:S3cretPw@db:3306/x\"\n[sdk]\nproxy_password = \"user:Pr0xyPw\"\n";
    let cfg = Config::from_parts(text, None, env(&[])).unwrap();
    let debug = format!("{cfg:?}");
    assert!(!debug.contains("S3cretPw") && !debug.contains("Pr0xyPw"), "{debug}");
    assert!(debug.contains("mysql://archiver:***@db:3306/x"), "{debug}");
}
/// Issue 12 point 10: a wrong or invalid value is named by its key and where it was set,
/// never shown (an all-digit secret in the wrong place used to be echoed by serde).
#[test]
fn errors_name_key_and_place_never_the_value() {
    let file = Some(Path::new("/etc/wework/config.toml"));
    let cases = [
        (
            "[media]\nenabled = true\ns3_secret_access_key = 918273645501\n",
            "918273645501",
            "config.toml:3",
            "media.s3_secret_access_key",
            "wrong type, expected a string",
        ),
        (
            "[log]\n\nformat = \"jsonx-7731\"\n",
            "jsonx-7731",
            "config.toml:3",
            "log.format",
            "expected `human` or `json`",
        ),
        ("[pull]\nlimit = \"5550123\"\n", "5550123", "config.toml:2", "pull.limit", "expected a non-negative integer"),
        (
            "[pull]\npoll_interval = \"soon-31337\"\n",
            "soon-31337",
            "config.toml:2",
            "pull.poll_interval",
            "expected a duration",
        ),
        ("[sdk]\nproxy_password = 77665544\n", "77665544", "config.toml:2", "sdk.proxy_password", "wrong type"),
        (
            "[http]\nlisten = \"9100-secretish\"\n",
            "9100-secretish",
            "config.toml:2",
            "http.listen",
            "expected host:port",
        ),
        (
            "[database]\nurl = \"mysql://u:424242@h/db\"\nmax_connections = -424242\n",
            "424242",
            "config.toml:3",
            "database.max_connections",
            "invalid value",
        ),
    ];
    for (text, value, at, key, what) in cases {
        let err = Config::from_parts(text, file, env(&[])).unwrap_err().to_string();
        assert!(!err.contains(value), "the value is shown: {err}");
        assert!(err.contains(&format!("{at}: {key}: ")) && err.contains(what), "{err}");
    }
    // From the environment: the variable's name instead of file:line.
    let cases = [
        ("WEWORK_MSGAUDIT__PULL__LIMIT", "9081726354x", "pull.limit", "expected a non-negative integer"),
        ("WEWORK_MSGAUDIT__CORPS__TABLE", "7777", "corps.table", "expected a boolean"),
        ("WEWORK_MSGAUDIT__LOG__FORMAT", "113355", "log.format", "expected `human` or `json`"),
    ];
    for (name, value, key, what) in cases {
        let err = Config::from_parts("[pull]\nlimit = 5\n", file, env(&[(name, value)])).unwrap_err().to_string();
        assert!(!err.contains(value), "the value is shown: {err}");
        assert!(err.contains(&format!("environment variable {name}: {key}: ")) && err.contains(what), "{err}");
    }
    // Syntax errors: file:line, the message without the source line.
    let err = Config::from_parts("[pull]\nlimit = 5\nsecret-ish = \"6655\n", file, env(&[])).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    let err = err.to_string();
    assert!(err.contains("config.toml:3") && !err.contains("6655"), "{err}");
}

/// Issue 12 point 10: an environment value takes the type of its key (`INSTANCE_ID=1` was
/// turned into an integer and refused).
#[test]
fn environment_values_take_the_type_of_their_key() {
    let cfg = Config::from_parts(
        "",
        None,
        env(&[
            ("WEWORK_MSGAUDIT__CLUSTER__INSTANCE_ID", "1"),
            ("WEWORK_MSGAUDIT__MEDIA__INSTANCE_ID", "true"),
            ("WEWORK_MSGAUDIT__MEDIA__S3_SECRET_ACCESS_KEY", "0012345"),
            ("WEWORK_MSGAUDIT__SDK__PROXY", "1.5"),
            ("WEWORK_MSGAUDIT__CLUSTER__LEASES", "true"),
            ("WEWORK_MSGAUDIT__SDK__THREADS", "3"),
            ("WEWORK_MSGAUDIT__MEDIA__MP3_BITRATE", "64"),
            ("WEWORK_MSGAUDIT__DAEMON__SHUTDOWN_GRACE", "45s"),
            ("WEWORK_MSGAUDIT__MEDIA__TRANSCODE", "false"),
            ("WEWORK_MSGAUDIT__LOG__LEVEL", "debug"),
        ]),
    )
    .unwrap();
    assert_eq!(cfg.cluster.instance_id, "1");
    assert_eq!(cfg.media.instance_id, "true");
    assert_eq!(cfg.media.s3_secret_access_key.expose(), "0012345");
    assert_eq!(cfg.sdk.proxy, "1.5");
    assert!(cfg.cluster.leases && !cfg.media.transcode);
    assert_eq!((cfg.sdk.threads, cfg.media.mp3_bitrate), (3, 64));
    assert_eq!(cfg.daemon.shutdown_grace, Duration::from_secs(45));
    assert_eq!(cfg.log.level, "debug");
}

/// A check on a key set from the environment names the variable.
#[test]
fn checks_name_the_origin_of_the_key() {
    let err = Config::from_parts(
        "[http]\nlisten = \"127.0.0.1:1\"\n",
        Some(Path::new("c.toml")),
        env(&[("WEWORK_MSGAUDIT__HTTP__LISTEN", "nohost")]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("environment variable WEWORK_MSGAUDIT__HTTP__LISTEN: http.listen:"), "{err}");
    assert!(!err.contains("nohost"), "{err}");
}

#[test]
fn alert_channels_are_checked_and_never_print_secrets() {
    let one = "[[alerts.channel]]\nname = \"w\"\nkind = \"wecom\"\nurl = \"https://q/send?key=ROBOTKEY\"\nsecret = \"S3CR3T\"\n";
    let cfg = Config::from_parts(one, None, []).unwrap();
    let c = &cfg.alerts.channel[0];
    assert_eq!(
        (c.kind, c.rules.as_slice(), c.corps.as_slice()),
        (AlertChannelKind::Wecom, &["*".to_string()][..], &["*".to_string()][..])
    );
    assert_eq!(c.rate_window, Duration::from_secs(60));
    let debug = format!("{cfg:?}");
    assert!(!debug.contains("ROBOTKEY") && !debug.contains("S3CR3T"), "{debug}");
    for (text, says) in [
        (format!("{one}{one}"), "used twice"),
        ("[[alerts.channel]]\nname = \"w\"\nkind = \"webhook\"\nurl = \"\"\n".into(), "url is required"),
        ("[[alerts.channel]]\nname = \"m\"\nkind = \"email\"\nurl = \"smtp://h\"\n".into(), "email needs from and to"),
        ("[[alerts.channel]]\nname = \"a b\"\nkind = \"webhook\"\nurl = \"http://h\"\n".into(), "no spaces"),
        ("[http]\npublic_url = \"audit.example.com\"\n".into(), "http.public_url"),
    ] {
        let err = Config::from_parts(&text, None, []).unwrap_err().to_string();
        assert!(err.contains(says), "{text}: {err}");
        assert!(!err.contains("ROBOTKEY") && !err.contains("S3CR3T"), "{err}");
    }
    let err = Config::from_parts("[[alerts.channel]]\nname = \"x\"\nkind = \"pigeon\"\nurl = \"S3CR3T\"\n", None, [])
        .unwrap_err()
        .to_string();
    assert!(err.contains("alerts.channel") && !err.contains("S3CR3T"), "{err}");
}
