//! S3 credentials from the AWS default chain, against moto enforcing SigV4 authentication: an
//! EC2 instance profile (a fake IMDSv2 on 127.0.0.1 reached through `AWS_METADATA_ENDPOINT`), a
//! shared-credentials profile, `--anonymous`, the unsigned fallback when no source exists, and
//! secrets that never reach stdout, stderr or a report.
//!
//! Every run is a CLI subprocess with the caller's AWS variables removed and `HOME` in a temp
//! dir, so no credential of the machine running the tests takes part.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// Keys moto accepts: those of a role assumed through moto's STS.
#[derive(Clone)]
struct Keys {
    key_id: String,
    secret: String,
    token: String,
}

/// A moto server that, once set up, rejects every request not signed with `keys`: it creates
/// `buckets` and a role allowed `s3:*`, assumes the role, then turns authentication on
/// (`/moto-api/reset-auth`, moto's `INITIAL_NO_AUTH_ACTION_COUNT`).
fn moto_enforcing_auth(buckets: &[&str]) -> (Moto, Keys) {
    let moto = Moto::start();
    let out = python(&format!(
        r#"
import boto3, json, urllib.request
ep = "{ep}"
kw = dict(endpoint_url=ep, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
iam, sts, s3 = (boto3.client(s, **kw) for s in ("iam", "sts", "s3"))
iam.create_role(RoleName="ingest", AssumeRolePolicyDocument=json.dumps({{"Version": "2012-10-17",
    "Statement": [{{"Effect": "Allow", "Principal": {{"AWS": "*"}}, "Action": "sts:AssumeRole"}}]}}))
iam.put_role_policy(RoleName="ingest", PolicyName="s3", PolicyDocument=json.dumps({{"Version": "2012-10-17",
    "Statement": [{{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}]}}))
for b in {buckets:?}:
    s3.create_bucket(Bucket=b)
c = sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/ingest", RoleSessionName="earthcatalog-test")["Credentials"]
urllib.request.urlopen(urllib.request.Request(ep + "/moto-api/reset-auth", data=b"0", method="POST",
    headers={{"Content-Type": "text/plain"}})).read()
print(json.dumps([c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]]))
"#,
        ep = moto.endpoint(),
    ));
    let [key_id, secret, token]: [String; 3] = serde_json::from_str(out.trim()).unwrap();
    (
        moto,
        Keys {
            key_id,
            secret,
            token,
        },
    )
}

/// What a fake instance metadata service was asked: `"METHOD path"` → count, and whether every
/// credentials request carried the session token from `PUT /latest/api/token`.
#[derive(Default)]
struct ImdsLog {
    requests: HashMap<String, usize>,
    untokened_gets: usize,
}

impl ImdsLog {
    fn total(&self) -> usize {
        self.requests.values().sum()
    }
    fn count(&self, what: &str) -> usize {
        self.requests.get(what).copied().unwrap_or(0)
    }
}

const IMDS_TOKEN: &str = "imds-session-token";
const ROLE: &str = "ingest-instance-role";

/// A fake IMDSv2 on 127.0.0.1 handing out `keys` as the credentials of role [`ROLE`]; with
/// `hang`, it accepts connections and never answers.
fn fake_imds(keys: Option<Keys>, hang: bool) -> (String, Arc<Mutex<ImdsLog>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log: Arc<Mutex<ImdsLog>> = Arc::default();
    let seen = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            let seen = seen.clone();
            let keys = keys.clone();
            std::thread::spawn(move || serve_imds(stream, keys, hang, seen));
        }
    });
    (format!("http://127.0.0.1:{port}"), log)
}

fn serve_imds(mut stream: TcpStream, keys: Option<Keys>, hang: bool, log: Arc<Mutex<ImdsLog>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("/").to_string();
        let mut token = None;
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("x-aws-ec2-metadata-token:") {
                token = Some(v.trim().to_string());
            } else if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        let _ = reader.read_exact(&mut body);
        {
            let mut log = log.lock().unwrap();
            *log.requests.entry(format!("{method} {path}")).or_default() += 1;
            if method == "GET" && token.as_deref() != Some(IMDS_TOKEN) {
                log.untokened_gets += 1;
            }
        }
        if hang {
            std::thread::sleep(Duration::from_secs(120));
            return;
        }
        let creds_path = "/latest/meta-data/iam/security-credentials/";
        let (status, body) = match (method.as_str(), path.as_str(), &keys) {
            ("PUT", "/latest/api/token", _) => ("200 OK", IMDS_TOKEN.to_string()),
            ("GET", _, _) if token.as_deref() != Some(IMDS_TOKEN) => {
                ("401 Unauthorized", String::new())
            }
            ("GET", p, Some(_)) if p == creds_path => ("200 OK", ROLE.to_string()),
            ("GET", p, Some(k)) if p == format!("{creds_path}{ROLE}") => (
                "200 OK",
                serde_json::json!({
                    "Code": "Success",
                    "Type": "AWS-HMAC",
                    "AccessKeyId": k.key_id,
                    "SecretAccessKey": k.secret,
                    "Token": k.token,
                    "Expiration": (chrono::Utc::now() + chrono::Duration::hours(6)).to_rfc3339(),
                })
                .to_string(),
            ),
            _ => ("404 Not Found", String::new()),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n",
            body.len()
        );
        if stream
            .write_all(head.as_bytes())
            .and_then(|_| stream.write_all(body.as_bytes()))
            .is_err()
        {
            return;
        }
    }
}

/// A base URL nothing listens on.
fn closed_endpoint() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

/// A public S3-like endpoint on 127.0.0.1 serving the items of `ds` as `/<bucket>/<key>`, the
/// inventory rows alternating between buckets `pub-a` and `pub-b` (two stores). Records, per
/// request, whether it carried an `Authorization` header. Returns the endpoint, the inventory
/// path and the log.
fn public_items(ds: &Dataset) -> (String, String, Arc<Mutex<Vec<bool>>>) {
    let mut objects = HashMap::new();
    let mut inventory = String::from("bucket,key\n");
    let root = ds.dir.path().join("items");
    for (i, f) in walk(&root).into_iter().enumerate() {
        let key = f
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let bucket = if i % 2 == 0 { "pub-a" } else { "pub-b" };
        objects.insert(format!("/{bucket}/{key}"), std::fs::read(&f).unwrap());
        inventory.push_str(&format!("{bucket},{key}\n"));
    }
    let inv = ds.path("public.csv");
    std::fs::write(&inv, inventory).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log: Arc<Mutex<Vec<bool>>> = Arc::default();
    let seen = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let objects = objects.clone();
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let mut signed = false;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                        signed |= h.to_ascii_lowercase().starts_with("authorization:");
                    }
                    seen.lock().unwrap().push(signed);
                    let (status, body) = match objects.get(&path) {
                        Some(b) => ("200 OK", b.clone()),
                        None => ("404 Not Found", Vec::new()),
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nETag: \"e\"\r\n\r\n",
                        body.len()
                    );
                    if stream
                        .write_all(head.as_bytes())
                        .and_then(|_| stream.write_all(&body))
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://127.0.0.1:{port}"), inv, log)
}

/// The CLI with none of the caller's AWS or earthcatalog S3 variables and `HOME` at `home`,
/// reading S3 at `endpoint`, asking the metadata service at `imds`, ingesting `inventory` into
/// a local warehouse `name`.
fn ingest_public(endpoint: &str, home: &Path, imds: &str, inventory: &str, name: &str) -> Command {
    let mut c = bare_cli(home, endpoint, imds);
    c.args(["ingest", "--json", "--no-lock", "--resolution", "1"])
        .args(["--inventory", inventory])
        .args(["--warehouse", &home.join(name).to_string_lossy()])
        .args([
            "--catalog",
            &home.join(format!("{name}.db")).to_string_lossy(),
        ]);
    c
}

fn bare_cli(home: &Path, endpoint: &str, imds: &str) -> Command {
    let mut c = cli();
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("EARTHCATALOG_S3_") {
            c.env_remove(k);
        }
    }
    c.env("HOME", home)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_METADATA_ENDPOINT", imds)
        .env("EARTHCATALOG_S3_BACKOFF_MS", "10");
    c
}

/// The CLI with none of the caller's AWS or earthcatalog S3 variables, `HOME` at `home`, talking
/// to `moto` and asking the metadata service at `imds`.
fn cli_for(moto: &Moto, home: &Path, imds: &str) -> Command {
    bare_cli(home, &moto.endpoint(), imds)
}

/// Ingest `ds` (local inventory and items) into the S3 warehouse `warehouse`, catalog local.
fn ingest_into(c: &mut Command, ds: &Dataset, warehouse: &str, name: &str) -> Output {
    ingest_with(c, ds, warehouse, name, &[])
}

fn ingest_with(
    c: &mut Command,
    ds: &Dataset,
    warehouse: &str,
    name: &str,
    extra: &[&str],
) -> Output {
    run(c
        .args(["ingest", "--json", "--resolution", "1"])
        .args(extra)
        .args([
            "--inventory",
            &ds.inventory(),
            "--items-root",
            &ds.items_root(),
        ])
        .args(["--warehouse", warehouse])
        .args(["--catalog", &ds.path(&format!("{name}.db"))]))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn instance_profile_credentials_sign_every_request() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ds = rt.block_on(Dataset::synth(6, 3));
    let (moto, keys) = moto_enforcing_auth(&["ec-instance"]);
    let (imds, log) = fake_imds(Some(keys), false);
    let home = tempfile::tempdir().unwrap();

    // Control: moto refuses unsigned requests, so a success below means signed ones.
    let out = ingest_into(
        cli_for(&moto, home.path(), &imds)
            .env("EARTHCATALOG_S3_MAX_RETRIES", "0")
            .arg("--anonymous"),
        &ds,
        "s3://ec-instance/control",
        "control",
    );
    assert_ne!(
        out.status.code(),
        Some(0),
        "moto must refuse unsigned requests"
    );
    assert_eq!(
        log.lock().unwrap().total(),
        0,
        "--anonymous never asks IMDS"
    );

    let out = ingest_into(
        &mut cli_for(&moto, home.path(), &imds),
        &ds,
        "s3://ec-instance/wh",
        "signed",
    );
    let m = json_summary(&out, 0);
    assert_eq!(m["items"], 6);
    assert!(m["files"].as_u64().unwrap() > 0);
    let log = log.lock().unwrap();
    assert!(
        log.count("PUT /latest/api/token") >= 1,
        "{:?}",
        log.requests
    );
    assert!(
        log.count(&format!(
            "GET /latest/meta-data/iam/security-credentials/{ROLE}"
        )) >= 1,
        "{:?}",
        log.requests
    );
    assert_eq!(
        log.untokened_gets, 0,
        "IMDSv2: every GET carries the session token"
    );
}

#[test]
fn profile_credentials_sign_every_request_without_asking_imds() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ds = rt.block_on(Dataset::synth(4, 5));
    let (moto, keys) = moto_enforcing_auth(&["ec-profile"]);
    let (imds, log) = fake_imds(None, false);
    let home = tempfile::tempdir().unwrap();

    // A named profile in AWS_SHARED_CREDENTIALS_FILE.
    let file = home.path().join("shared-credentials");
    std::fs::write(
        &file,
        format!(
            "# earthcatalog test\n[default]\naws_access_key_id = AKIAWRONG\n\
             aws_secret_access_key = wrong\n\n[ingest]\naws_access_key_id = {}\n\
             aws_secret_access_key = {}\naws_session_token = {}\n",
            keys.key_id, keys.secret, keys.token
        ),
    )
    .unwrap();
    let out = ingest_into(
        cli_for(&moto, home.path(), &imds)
            .env("AWS_SHARED_CREDENTIALS_FILE", &file)
            .env("AWS_PROFILE", "ingest"),
        &ds,
        "s3://ec-profile/named",
        "named",
    );
    assert_eq!(json_summary(&out, 0)["items"], 4);

    // The default profile of ~/.aws/credentials.
    std::fs::create_dir_all(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/credentials"),
        format!(
            "[default]\naws_access_key_id={}\naws_secret_access_key={}\naws_session_token={}\n",
            keys.key_id, keys.secret, keys.token
        ),
    )
    .unwrap();
    let out = ingest_into(
        &mut cli_for(&moto, home.path(), &imds),
        &ds,
        "s3://ec-profile/default",
        "default",
    );
    assert_eq!(json_summary(&out, 0)["items"], 4);
    assert_eq!(
        log.lock().unwrap().total(),
        0,
        "a profile is found before IMDS"
    );

    // A profile that does not exist is a usage error naming it.
    let out = ingest_into(
        cli_for(&moto, home.path(), &imds).env("AWS_PROFILE", "ingset"),
        &ds,
        "s3://ec-profile/typo",
        "typo",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("\"ingset\""), "{}", stderr(&out));
}

#[test]
fn anonymous_sends_no_credentials_even_when_they_exist() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ds = rt.block_on(Dataset::synth(3, 9));
    let (moto, keys) = moto_enforcing_auth(&["ec-anon"]);
    let (imds, log) = fake_imds(Some(keys.clone()), false);
    let home = tempfile::tempdir().unwrap();
    let with_keys = |c: &mut Command| {
        c.env("AWS_ACCESS_KEY_ID", &keys.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &keys.secret)
            .env("AWS_SESSION_TOKEN", &keys.token)
            .env("EARTHCATALOG_S3_MAX_RETRIES", "0");
    };

    // With valid environment keys the ingest succeeds ...
    let mut c = cli_for(&moto, home.path(), &imds);
    with_keys(&mut c);
    assert_eq!(
        json_summary(
            &ingest_into(&mut c, &ds, "s3://ec-anon/signed", "signed"),
            0
        )["items"],
        3
    );
    // ... and the same run asked to be anonymous (flag or variable) is refused by moto.
    for (i, anonymous) in [["--anonymous", ""], ["", "1"]].iter().enumerate() {
        let mut c = cli_for(&moto, home.path(), &imds);
        with_keys(&mut c);
        if !anonymous[0].is_empty() {
            c.arg(anonymous[0]);
        } else {
            c.env("EARTHCATALOG_S3_ANONYMOUS", anonymous[1]);
        }
        let out = ingest_into(
            &mut c,
            &ds,
            &format!("s3://ec-anon/anon{i}"),
            &format!("a{i}"),
        );
        assert_ne!(
            out.status.code(),
            Some(0),
            "unsigned requests must be refused"
        );
    }
    assert_eq!(log.lock().unwrap().total(), 0, "anonymous never asks IMDS");

    // What goes over the wire: with keys every request carries an Authorization header; with
    // --anonymous none does.
    let (endpoint, inventory, requests) = public_items(&ds);
    let mut c = ingest_public(&endpoint, home.path(), &imds, &inventory, "keys");
    with_keys(&mut c);
    assert_eq!(json_summary(&run(&mut c), 0)["items"], 3);
    let signed = std::mem::take(&mut *requests.lock().unwrap());
    assert!(
        !signed.is_empty() && signed.iter().all(|s| *s),
        "{signed:?}"
    );
    let mut c = ingest_public(&endpoint, home.path(), &imds, &inventory, "anon");
    with_keys(&mut c);
    assert_eq!(json_summary(&run(c.arg("--anonymous")), 0)["items"], 3);
    let signed = std::mem::take(&mut *requests.lock().unwrap());
    assert!(
        !signed.is_empty() && signed.iter().all(|s| !s),
        "{signed:?}"
    );
    assert_eq!(log.lock().unwrap().total(), 0, "anonymous never asks IMDS");
}

#[test]
fn without_any_source_requests_are_unsigned_after_one_short_probe() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ds = rt.block_on(Dataset::synth(6, 11));
    let (endpoint, inventory, requests) = public_items(&ds);
    let home = tempfile::tempdir().unwrap();

    // A metadata service that accepts connections and never answers.
    let (imds, log) = fake_imds(None, true);
    let started = Instant::now();
    let out = run(ingest_public(&endpoint, home.path(), &imds, &inventory, "hung").arg("-v"));
    let elapsed = started.elapsed();
    assert_eq!(json_summary(&out, 0)["items"], 6);
    assert!(
        stderr(&out).contains("S3 requests are unsigned"),
        "the fallback is logged at info level: {}",
        stderr(&out)
    );
    // Two buckets, one probe of at most a second.
    assert_eq!(log.lock().unwrap().count("PUT /latest/api/token"), 1);
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    let signed: Vec<bool> = std::mem::take(&mut *requests.lock().unwrap());
    assert_eq!(signed.len(), 6);
    assert!(
        signed.iter().all(|s| !s),
        "no Authorization header: {signed:?}"
    );

    // A metadata service that is not there at all: the same.
    let out = run(&mut ingest_public(
        &endpoint,
        home.path(),
        &closed_endpoint(),
        &inventory,
        "closed",
    ));
    assert_eq!(json_summary(&out, 0)["items"], 6);
    assert!(requests.lock().unwrap().iter().all(|s| !s));
}

#[test]
fn secrets_appear_in_no_output_log_or_report() {
    const KEY_ID: &str = "AKIAEARTHCATALOGKEYID";
    const SECRET: &str = "ecSecret7f3a9cDoNotLog";
    const TOKEN: &str = "ecSessionToken41b2e8DoNotLog";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ds = rt.block_on(Dataset::synth(8, 13));
    let mut inventory = std::fs::read_to_string(ds.inventory()).unwrap();
    inventory.push_str("its-live-data,missing/none.stac.json\n");
    std::fs::write(ds.inventory(), inventory).unwrap();
    let moto = Moto::start();
    moto.create_bucket("ec-secret");
    let home = tempfile::tempdir().unwrap();
    let reports = ds.path("reports");
    let catalog = "s3://ec-secret/catalog/catalog.db";
    let warehouse = "s3://ec-secret/wh";

    let env_keys = |c: &mut Command| {
        c.env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_SESSION_TOKEN", TOKEN)
            .env("EARTHCATALOG_S3_MAX_RETRIES", "1");
    };
    let mut outputs: Vec<(String, Output)> = Vec::new();
    let mut go = |name: &str, args: &[&str], profile: bool| {
        let mut c = cli_for(&moto, home.path(), &closed_endpoint());
        if profile {
            let file = home.path().join("creds");
            std::fs::write(
                &file,
                format!(
                    "[p]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n\
                     aws_session_token = {TOKEN}\n"
                ),
            )
            .unwrap();
            c.env("AWS_SHARED_CREDENTIALS_FILE", file)
                .env("AWS_PROFILE", "p");
        } else {
            env_keys(&mut c);
        }
        outputs.push((name.to_string(), run(c.arg("-vv").args(args))));
    };
    let inv = ds.inventory();
    let items = ds.items_root();
    let ingest = [
        "ingest",
        "--json",
        "--inventory",
        &inv,
        "--items-root",
        &items,
        "--warehouse",
        warehouse,
        "--catalog",
        catalog,
        "--report-dir",
        &reports,
    ];
    go("ingest", &ingest, false);
    go("ingest (profile)", &ingest, true);
    let read = ["--catalog", catalog, "--warehouse", warehouse];
    go("info", &[&["info"][..], &read].concat(), false);
    go("stats", &[&["stats"][..], &read].concat(), true);
    go(
        "files",
        &[&["files", "--bbox", "-180,-90,180,90"][..], &read].concat(),
        false,
    );
    go(
        "search",
        &[&["search", "--limit", "3"][..], &read].concat(),
        false,
    );
    go(
        "compact",
        &[&["compact", "--threshold", "2"][..], &read].concat(),
        false,
    );
    // Failures: a bucket that does not exist, a missing secret key in a profile.
    go(
        "ingest (no bucket)",
        &[
            "ingest",
            "--inventory",
            &inv,
            "--items-root",
            &items,
            "--warehouse",
            "s3://ec-no-such-bucket/wh",
            "--catalog",
            &ds.path("x.db"),
        ],
        false,
    );

    let first = &outputs[0].1;
    let m = json_summary(first, 3);
    assert_eq!(m["failed"], 1, "the failures report is written");
    for (name, out) in &outputs {
        let expected = match name.as_str() {
            "ingest" | "ingest (profile)" => Some(3),
            "ingest (no bucket)" => Some(1),
            _ => Some(0),
        };
        assert_eq!(out.status.code(), expected, "{name}: {}", stderr(out));
    }
    let mut texts: Vec<(String, String)> = outputs
        .iter()
        .flat_map(|(n, o)| {
            [
                (
                    format!("{n} stdout"),
                    String::from_utf8_lossy(&o.stdout).into_owned(),
                ),
                (
                    format!("{n} stderr"),
                    String::from_utf8_lossy(&o.stderr).into_owned(),
                ),
            ]
        })
        .collect();
    let report_files = walk(Path::new(&reports));
    assert!(
        report_files
            .iter()
            .any(|p| p.to_string_lossy().ends_with("_failures.csv"))
            && report_files
                .iter()
                .any(|p| p.to_string_lossy().ends_with("_summary.json")),
        "{report_files:?}"
    );
    for p in report_files {
        texts.push((
            p.display().to_string(),
            std::fs::read_to_string(&p).unwrap(),
        ));
    }
    let debug_lines: usize = texts.iter().map(|(_, t)| t.matches("DEBUG").count()).sum();
    assert!(
        debug_lines > 50,
        "-vv logs at debug level ({debug_lines} lines)"
    );
    for (name, text) in &texts {
        for secret in [KEY_ID, SECRET, TOKEN] {
            assert!(
                !text.contains(secret),
                "{secret} leaked into {name}:\n{text}"
            );
        }
    }
}
