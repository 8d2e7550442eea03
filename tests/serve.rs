//! `nmt serve` through the built binary: the API contract, batching equivalence, refusals,
//! timeouts, graceful shutdown, and the page in headless Chromium (where it is installed).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A toy model trained once for all tests in this file.
fn model() -> &'static str {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("toy");
        let args = common::toy_train_args(&path, false, &["--epochs", "20"]);
        common::ok(
            Command::new(env!("CARGO_BIN_EXE_nmt"))
                .args(&args)
                .output()
                .unwrap(),
        );
        (dir, path)
    });
    path.to_str().unwrap()
}

/// A running `nmt serve` on a free port, killed when dropped.
struct Server {
    child: Child,
    url: String,
    /// Everything it printed on stderr, filled by a reader thread.
    log: Arc<std::sync::Mutex<String>>,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nmt"))
            .args(["serve", "--model", model(), "--port", "0", "--threads", "2"])
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut url = None;
        let log = Arc::new(std::sync::Mutex::new(String::new()));
        for line in lines.by_ref() {
            let line = line.unwrap();
            log.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some(rest) = line.split("serving on ").nth(1) {
                url = Some(rest.split_whitespace().next().unwrap().to_string());
                break;
            }
        }
        let url = url.unwrap_or_else(|| panic!("nmt serve did not start: {}", log.lock().unwrap()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        Server { child, url, log }
    }

    fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let r = ureq::post(&format!("{}{path}", self.url))
            .set("Content-Type", "application/json")
            .send_string(body);
        answer(r)
    }

    fn get(&self, path: &str) -> (u16, String) {
        match ureq::get(&format!("{}{path}", self.url)).call() {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    fn translate(&self, request: Value) -> Value {
        let (status, body) = self.post("/v1/translate", &request.to_string());
        assert_eq!(status, 200, "{request} -> {body}");
        body
    }

    /// A counter's value in `GET /metrics`.
    fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.get("/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .parse()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn answer(r: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    let (status, resp) = match r {
        Ok(r) => (r.status(), r),
        Err(ureq::Error::Status(code, r)) => (code, r),
        Err(e) => panic!("request failed: {e}"),
    };
    let text = resp.into_string().unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, body)
}

const SENTENCES: [&str; 8] = [
    "Der Hund läuft im Park.",
    "Eine Frau lacht.",
    "Zwei Kinder spielen.",
    "Ein Mann liest ein Buch.",
    "Die Katze schläft.",
    "Ein Junge trinkt Wasser.",
    "Das Mädchen singt.",
    "Ein alter Mann geht.",
];

/// `nmt translate`'s output for `sentences` with `flags`.
fn cli_translations(sentences: &[&str], flags: &[&str]) -> Vec<String> {
    let out = common::ok(
        Command::new(env!("CARGO_BIN_EXE_nmt"))
            .args(["translate", "--model", model()])
            .args(flags)
            .args(sentences)
            .output()
            .unwrap(),
    );
    out.lines().map(str::to_string).collect()
}

fn texts(body: &Value) -> Vec<String> {
    body["translations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["text"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_api_answers_as_the_command_line_does() {
    let s = Server::start(&[]);
    let (status, health) = s.get("/health");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&health).unwrap()["status"],
        "ok"
    );
    let (_, models) = s.get("/v1/models");
    let models: Value = serde_json::from_str(&models).unwrap();
    assert_eq!(models["models"][0]["name"], model());
    assert_eq!(models["models"][0]["defaults"]["beam"], 5);

    let one = s.translate(json!({"text": SENTENCES[0]}));
    assert_eq!(one["model"], model());
    assert_eq!(texts(&one), cli_translations(&SENTENCES[..1], &[]));
    let many = s.translate(json!({"texts": SENTENCES[..3]}));
    assert_eq!(texts(&many), cli_translations(&SENTENCES[..3], &[]));
    let greedy = s.translate(json!({"texts": SENTENCES[..3], "beam": 1}));
    assert_eq!(
        texts(&greedy),
        cli_translations(&SENTENCES[..3], &["--beam", "1"])
    );

    let nbest = s.translate(json!({"text": SENTENCES[1], "beam": 4, "n_best": 3}));
    let hyps = nbest["translations"][0]["hypotheses"].as_array().unwrap();
    assert_eq!(hyps.len(), 3);
    let scores: Vec<f64> = hyps.iter().map(|h| h["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert_eq!(nbest["translations"][0]["text"], hyps[0]["text"]);

    // A blank text gets an empty translation, as on the command line.
    assert_eq!(
        texts(&s.translate(json!({"texts": ["", SENTENCES[2]]})))[0],
        ""
    );

    let (status, page) = s.get("/");
    assert_eq!(status, 200);
    assert!(
        page.contains("/v1/translate") && page.contains("<textarea"),
        "{page}"
    );
    let metrics = s.get("/metrics").1;
    assert!(
        metrics.contains("nmt_requests_total{route=\"/v1/translate\",status=\"200\"} 5"),
        "{metrics}"
    );
    assert!(
        metrics.contains("nmt_request_seconds_bucket{le=\"+Inf\"} 5"),
        "{metrics}"
    );
    assert_eq!(s.metric("nmt_sentences_total"), 10.0);
    assert_eq!(s.metric("nmt_queue_depth"), 0.0);
}

#[test]
fn requests_searched_together_answer_as_alone() {
    // A long window, so that the 8 requests, sent at once, meet in the queue.
    let s = Arc::new(Server::start(&["--batch-window-ms", "300"]));
    let barrier = Arc::new(Barrier::new(SENTENCES.len()));
    let together: Vec<Value> = SENTENCES
        .iter()
        .map(|&text| {
            let (s, barrier) = (s.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                s.translate(json!({"text": text, "n_best": 2}))
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let batches = s.metric("nmt_batches_total");
    assert!(
        batches < SENTENCES.len() as f64,
        "{batches} searches for 8 requests sent at once"
    );
    for (text, got) in SENTENCES.iter().zip(&together) {
        let alone = s.translate(json!({"text": text, "n_best": 2}));
        let (a, b) = (&alone["translations"][0], &got["translations"][0]);
        assert_eq!(a["text"], b["text"], "{text}");
        for (x, y) in a["hypotheses"]
            .as_array()
            .unwrap()
            .iter()
            .zip(b["hypotheses"].as_array().unwrap())
        {
            assert_eq!(x["text"], y["text"], "{text}");
            let (x, y) = (x["score"].as_f64().unwrap(), y["score"].as_f64().unwrap());
            assert!(
                (x - y).abs() < 1e-4,
                "{text}: score {x} alone, {y} together"
            );
        }
    }
}

#[test]
fn bad_requests_get_a_4xx_naming_the_field() {
    let s = Server::start(&[
        "--max-texts",
        "2",
        "--max-text-chars",
        "40",
        "--max-body-bytes",
        "1000",
    ]);
    let long = "Hund ".repeat(20);
    let big = "x".repeat(2000);
    for (body, status, field) in [
        ("{\"text\": ", 400, None),
        ("[\"Ein Hund\"]", 400, None),
        ("{}", 400, Some("text")),
        ("{\"text\": \"Ein Hund\", \"beam\": 0}", 400, Some("beam")),
        (
            "{\"text\": \"Ein Hund\", \"beam\": 2, \"n_best\": 3}",
            400,
            Some("n_best"),
        ),
        ("{\"text\": \"Ein Hund\", \"beem\": 2}", 400, Some("beem")),
        (
            "{\"text\": \"Ein Hund\", \"model\": \"nope\"}",
            400,
            Some("model"),
        ),
        (
            &format!("{{\"texts\": [\"a\", \"{long}\"]}}")[..],
            400,
            Some("texts[1]"),
        ),
        ("{\"texts\": [\"a\", \"b\", \"c\"]}", 400, Some("texts")),
        (&format!("{{\"text\": \"{big}\"}}")[..], 413, None),
    ] {
        let (got, answer) = s.post("/v1/translate", body);
        assert_eq!(got, status, "{body:.60} -> {answer}");
        let error = &answer["error"];
        assert_eq!(error["field"].as_str(), field, "{body:.60} -> {answer}");
        assert!(
            error["message"].as_str().is_some_and(|m| m.len() > 10),
            "{answer}"
        );
    }
    let (status, body) = s.get("/v1/translate");
    assert_eq!(status, 405, "{body}");
    assert!(serde_json::from_str::<Value>(&body).unwrap()["error"]["message"].is_string());
    let (status, body) = s.get("/nowhere");
    assert_eq!(status, 404, "{body}");
    // The server is still there after all that.
    assert_eq!(s.get("/health").0, 200);
    assert!(!s.log.lock().unwrap().contains("panicked"));
}

#[test]
fn a_request_over_the_time_limit_gets_503() {
    // The search thread waits its 5 ms window before searching: past a 1 ms limit.
    let s = Server::start(&["--timeout-s", "0.001"]);
    let (status, body) = s.post("/v1/translate", &json!({"text": SENTENCES[0]}).to_string());
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--timeout-s"),
        "{body}"
    );
    assert_eq!(s.get("/health").0, 200);
}

#[test]
fn sigterm_finishes_the_request_in_flight_then_exits_cleanly() {
    let mut s = Server::start(&["--batch-window-ms", "400"]);
    let url = s.url.clone();
    let in_flight = std::thread::spawn(move || {
        answer(
            ureq::post(&format!("{url}/v1/translate"))
                .send_string(&json!({"text": SENTENCES[0]}).to_string()),
        )
    });
    std::thread::sleep(Duration::from_millis(150));
    let pid = s.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let (status, body) = in_flight.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(texts(&body), cli_translations(&SENTENCES[..1], &[]));
    let started = Instant::now();
    let exit = loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nmt serve did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "exit {exit:?}: {}", s.log.lock().unwrap());
    assert!(s.log.lock().unwrap().contains("shutting down"));
}

#[test]
fn a_port_in_use_and_bad_flags_are_usage_errors() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    for (flags, says) in [
        (vec!["--port", port.as_str()], "cannot listen on 127.0.0.1"),
        (vec!["--timeout-s", "0"], "--timeout-s"),
        (vec!["--max-texts", "0"], "--max-texts"),
        (vec!["--batch-window-ms", "20000"], "--batch-window-ms"),
        (vec!["--beam", "0"], "beam"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_nmt"))
            .args(["serve", "--model", model()])
            .args(&flags)
            .output()
            .unwrap();
        let err = common::text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
        assert!(err.contains(says), "{flags:?}: {err}");
    }
}

/// Debian's chromium, where installed (`.ci/run` installs it).
fn chromium() -> Option<&'static Path> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
}

#[test]
fn the_page_translates_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        return common::skip(
            "serve::the_page_translates_in_headless_chromium",
            "chromium is not installed (apt-get install chromium)",
        );
    };
    let s = Server::start(&[]);
    let profile = tempfile::tempdir().unwrap();
    let url = format!("{}/?text={}", s.url, "Eine%20Frau%20lacht.");
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=20000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(&url)
        .output()
        .unwrap();
    let dom = common::text(&out.stdout);
    let want = cli_translations(&["Eine Frau lacht."], &[]);
    assert!(
        dom.contains("data-done=\"yes\""),
        "the page did not finish: {dom}\n{}",
        common::text(&out.stderr)
    );
    let shown = dom
        .split("<div id=\"output\">")
        .nth(1)
        .and_then(|rest| rest.split("</div>").next())
        .unwrap_or_default();
    assert_eq!(shown, html_escape(&want[0]), "{dom}");
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
