//! The bad-input catalogue: requests nobody should send, each with the status the fence must
//! answer and whether it may change anything, sent through the sandbox's Function URL front to
//! the real fence binary. The world is reset before each request.

use sandbox::world::SITES;
use serde_json::{Value, json};

use super::lab::{Lab, basic, site_offline};

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Figures {
    pub tried: usize,
    pub wrong: usize,
    pub rows: Vec<Row>,
    pub wrong_answers: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub case: &'static str,
    pub expected: u16,
    pub got: u16,
    pub ok: bool,
}

/// How the request authenticates.
#[derive(Clone)]
enum Auth {
    Right,
    None,
    Header(String),
    /// The right header and a second, wrong one.
    Twice,
}

struct Case {
    name: &'static str,
    method: &'static str,
    auth: Auth,
    /// `None`: no Content-Type header.
    content_type: Option<&'static str>,
    extra_headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    /// Whether site-b may be fenced by this request.
    fences: bool,
}

fn case(name: &'static str, body: Vec<u8>, status: u16) -> Case {
    Case {
        name,
        method: "POST",
        auth: Auth::Right,
        content_type: Some("application/json"),
        extra_headers: Vec::new(),
        body,
        status,
        fences: false,
    }
}

fn json_body(value: &Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

fn catalogue(lab: &Lab) -> Vec<Case> {
    let dns = lab.info.accelerator_dns.clone();
    let valid = site_offline(&dns, &[(SITES[0], SITES[1])]);
    let with_labels = |labels: Value| {
        let mut body = valid.clone();
        body["alerts"][0]["labels"] = labels;
        body
    };
    let labels = |reporter: &str, site: &str, accelerator: &str| {
        json!({"alertname": "SiteOffline", "reporter": reporter, "site": site,
               "accelerator": accelerator, "namespace": "default"})
    };
    let fencing = |mut case: Case| {
        case.fences = true;
        case
    };
    let user = lab.info.fence.user.clone();
    let password = lab.info.fence.password.clone();
    let many = |n: usize| {
        let pairs: Vec<(&str, &str)> = (0..n).map(|_| (SITES[0], SITES[1])).collect();
        site_offline(&dns, &pairs)
    };
    let mut nested = String::new();
    for _ in 0..100_000 {
        nested.push('[');
    }
    let mut deep = valid.to_string();
    deep.insert_str(deep.len() - 1, &format!(",\"deep\":{nested}"));

    vec![
        fencing(case("valid report (control case)", json_body(&valid), 200)),
        Case {
            auth: Auth::None,
            ..case("no Authorization header", json_body(&valid), 401)
        },
        Case {
            auth: Auth::Header(basic(&user, "wrong-password")),
            ..case("right user, wrong password", json_body(&valid), 401)
        },
        Case {
            auth: Auth::Header(basic("someone-else", &password)),
            ..case("wrong user, right password", json_body(&valid), 401)
        },
        Case {
            auth: Auth::Header("Basic !!!not-base64!!!".into()),
            ..case(
                "Basic credentials that are not base64",
                json_body(&valid),
                401,
            )
        },
        Case {
            auth: Auth::Header(format!("Bearer {password}")),
            ..case("Bearer scheme with the password", json_body(&valid), 401)
        },
        Case {
            auth: Auth::Header(basic(&format!("{user}é"), &password)),
            ..case("unicode in the user name", json_body(&valid), 401)
        },
        Case {
            auth: Auth::Twice,
            ..case(
                "duplicate Authorization headers (joined with a comma)",
                json_body(&valid),
                401,
            )
        },
        case("empty body", Vec::new(), 400),
        case("whitespace body", b"  \n ".to_vec(), 400),
        case(
            "truncated JSON",
            valid.to_string().as_bytes()[..120].to_vec(),
            400,
        ),
        case("JSON array instead of an object", b"[1,2,3]".to_vec(), 400),
        case("JSON null", b"null".to_vec(), 400),
        case("invalid UTF-8", vec![b'{', 0xff, 0xfe, b'}'], 400),
        case("nesting 100,000 deep", deep.into_bytes(), 400),
        Case {
            content_type: Some("text/plain"),
            ..case("text/plain content type", json_body(&valid), 415)
        },
        Case {
            content_type: Some("application/xml"),
            ..case("application/xml content type", b"<alerts/>".to_vec(), 415)
        },
        Case {
            content_type: Some("application/x-www-form-urlencoded"),
            ..case(
                "form content type (base64 through the front)",
                b"a=b".to_vec(),
                415,
            )
        },
        Case {
            extra_headers: vec![("content-type", "application/json".into())],
            ..case(
                "duplicate Content-Type headers (joined with a comma)",
                json_body(&valid),
                415,
            )
        },
        fencing(Case {
            content_type: None,
            ..case(
                "no Content-Type (body arrives base64-encoded)",
                json_body(&valid),
                200,
            )
        }),
        fencing(Case {
            content_type: Some("application/json; charset=utf-8"),
            ..case("Content-Type with charset", json_body(&valid), 200)
        }),
        case(
            "body of 2 MiB (over the 1 MiB limit)",
            {
                let mut body = valid.clone();
                body["commonAnnotations"]["padding"] = json!("x".repeat(2 << 20));
                json_body(&body)
            },
            413,
        ),
        case(
            "body of 7 MB (over the Function URL's 6 MB)",
            vec![b' '; 7_000_000],
            413,
        ),
        case(
            "missing alerts",
            json_body(&json!({"status": "firing", "version": "4"})),
            400,
        ),
        case(
            "missing status",
            {
                let mut body = valid.clone();
                if let Some(fields) = body.as_object_mut() {
                    fields.remove("status");
                }
                json_body(&body)
            },
            400,
        ),
        case(
            "alerts is null",
            {
                let mut body = valid.clone();
                body["alerts"] = Value::Null;
                json_body(&body)
            },
            400,
        ),
        fencing(case(
            "extra unknown fields everywhere",
            {
                let mut body = valid.clone();
                body["futureField"] = json!({"a": [1, 2]});
                body["alerts"][0]["futureField"] = json!(true);
                json_body(&body)
            },
            200,
        )),
        case(
            "label value is a number",
            json_body(&with_labels(json!({
            "alertname": "SiteOffline", "reporter": "site-a", "site": 5, "accelerator": dns}))),
            400,
        ),
        case(
            "missing reporter label",
            json_body(&with_labels(json!({
            "alertname": "SiteOffline", "site": "site-b", "accelerator": dns}))),
            400,
        ),
        case(
            "missing accelerator label",
            json_body(&with_labels(json!({
            "alertname": "SiteOffline", "reporter": "site-a", "site": "site-b"}))),
            400,
        ),
        case(
            "unicode site label",
            json_body(&with_labels(labels("site-a", "sité-b", &dns))),
            400,
        ),
        case(
            "emoji reporter label",
            json_body(&with_labels(labels("🔥", "site-b", &dns))),
            400,
        ),
        case(
            "right-to-left override in a label",
            json_body(&with_labels(labels("site-a", "site-b\u{202e}", &dns))),
            400,
        ),
        case(
            "NUL in a label",
            json_body(&with_labels(labels("site-a\u{0}", "site-b", &dns))),
            400,
        ),
        case(
            "site label of 100 kB",
            json_body(&with_labels(labels("site-a", &"b".repeat(100_000), &dns))),
            400,
        ),
        case(
            "unknown site",
            json_body(&with_labels(labels("site-a", "site-c", &dns))),
            400,
        ),
        case(
            "a site reporting itself",
            json_body(&with_labels(labels("site-a", "site-a", &dns))),
            400,
        ),
        case(
            "accelerator label that is not a DNS name",
            json_body(&with_labels(labels("site-a", "site-b", "not a dns name"))),
            400,
        ),
        case(
            "unknown accelerator",
            json_body(&with_labels(labels(
                "site-a",
                "site-b",
                "a0000000000000000.awsglobalaccelerator.com",
            ))),
            200,
        ),
        fencing(case(
            "labels with surrounding spaces",
            json_body(&with_labels(labels(" site-a ", " site-b ", &dns))),
            200,
        )),
        fencing(case(
            "unicode in annotations",
            {
                let mut body = valid.clone();
                body["alerts"][0]["annotations"]["summary"] = json!("Standort 🌍 ist offline — ﷽");
                json_body(&body)
            },
            200,
        )),
        case(
            "unicode alertname look-alike",
            json_body(&with_labels(json!({
            "alertname": "SiteOff\u{200b}line", "reporter": "site-a", "site": "site-b", "accelerator": dns}))),
            200,
        ),
        case(
            "resolved alert",
            {
                let mut body = valid.clone();
                body["status"] = json!("resolved");
                body["alerts"][0]["status"] = json!("resolved");
                json_body(&body)
            },
            200,
        ),
        case(
            "unknown alert status",
            {
                let mut body = valid.clone();
                body["alerts"][0]["status"] = json!("pending");
                json_body(&body)
            },
            200,
        ),
        case(
            "other alertname",
            json_body(&with_labels(json!({
            "alertname": "HighLatency", "reporter": "site-a", "site": "site-b", "accelerator": dns}))),
            200,
        ),
        case(
            "no alerts",
            json_body(&json!({"status": "firing", "alerts": []})),
            200,
        ),
        fencing(case(
            "one valid and one malformed alert",
            {
                json_body(&site_offline(
                    &dns,
                    &[(SITES[0], SITES[1]), (SITES[0], "site-c")],
                ))
            },
            400,
        )),
        fencing(case("500 alerts (the limit)", json_body(&many(500)), 200)),
        case("501 alerts", json_body(&many(501)), 413),
        case("20,000 alerts", json_body(&many(20_000)), 413),
        Case {
            method: "GET",
            ..case("GET without a body", Vec::new(), 400)
        },
    ]
}

pub async fn run(lab: &Lab) -> anyhow::Result<Figures> {
    let mut figures = Figures::default();
    let http = reqwest::Client::new();
    let url = lab.function_url()?.to_string();
    for case in catalogue(lab) {
        lab.reset().await?;
        let method = reqwest::Method::from_bytes(case.method.as_bytes())?;
        let mut request = http.request(method, &url).body(case.body.clone());
        match &case.auth {
            Auth::Right => request = request.header("authorization", lab.basic_auth()),
            Auth::None => {}
            Auth::Header(value) => request = request.header("authorization", value),
            Auth::Twice => {
                request = request
                    .header("authorization", lab.basic_auth())
                    .header("authorization", basic("someone", "else"));
            }
        }
        if let Some(content_type) = case.content_type {
            request = request.header("content-type", content_type);
        }
        for (name, value) in &case.extra_headers {
            request = request.header(*name, value);
        }
        let response = request.send().await?;
        let got = response.status().as_u16();
        let challenge = response.headers().contains_key("www-authenticate");
        let body = response.text().await.unwrap_or_default();

        let groups = lab.endpoint_groups().await?;
        let b_present = groups.values().flatten().any(|s| s == SITES[1]);
        let a_present = groups.values().flatten().any(|s| s == SITES[0]);
        let mut problems = Vec::new();
        if got != case.status {
            problems.push(format!("status {got}, expected {}", case.status));
        }
        if got == 401 && !challenge {
            problems.push("401 without WWW-Authenticate".to_string());
        }
        if !a_present {
            problems.push("site-a was removed".to_string());
        }
        if case.fences == b_present {
            problems.push(format!(
                "site-b {}",
                if b_present {
                    "not fenced"
                } else {
                    "fenced by a rejected request"
                }
            ));
        }
        let ok = problems.is_empty();
        if !ok {
            let shown: String = body.chars().take(300).collect();
            figures
                .wrong_answers
                .push(format!("{}: {} ({shown})", case.name, problems.join(", ")));
        }
        figures.rows.push(Row {
            case: case.name,
            expected: case.status,
            got,
            ok,
        });
    }
    figures.tried = figures.rows.len();
    figures.wrong = figures.rows.iter().filter(|r| !r.ok).count();
    Ok(figures)
}
