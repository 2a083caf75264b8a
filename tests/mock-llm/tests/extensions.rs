//! Black-box tests of the extensions beyond the reference `mock_llm.py`: the Responses API
//! (`POST /v1/responses`) and audio transcriptions (`POST /v1/audio/transcriptions`), against
//! the real binary over HTTP. The expected bytes are the ones tests/mock-llm/README.md
//! describes (random ids and timestamps normalized).

mod common;

use std::time::{Duration, Instant};

use common::{is_hex24, temp_path, MockLlm, Response};

const ID_PREFIXES: [&str; 6] = ["resp_", "msg_", "fc_", "call_", "rs_", "enc_"];

/// Replaces every `"<prefix><24 hex>"` id with `"<prefix>X"` and `"created_at":<digits>` with
/// `"created_at":T` (also after `": "`), checking their shape.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while let Some(at) = rest.find('"') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("\"created_at\":") {
            out.push_str("\"created_at\":");
            let after = match after.strip_prefix(' ') {
                Some(a) => {
                    out.push(' ');
                    a
                }
                None => after,
            };
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            assert_eq!(digits, 10, "created_at is a Unix timestamp: {after:.20}");
            out.push('T');
            rest = &after[digits..];
            continue;
        }
        for prefix in ID_PREFIXES {
            if let Some(id) = rest[1..].strip_prefix(prefix).filter(|id| is_id(id)) {
                assert_eq!(&id[12..13], "4", "uuid4 version digit in {id:.24}");
                assert!("89ab".contains(&id[16..17]), "uuid4 variant in {id:.24}");
                out.push('"');
                out.push_str(prefix);
                out.push('X');
                rest = &id[24..];
                continue 'scan;
            }
        }
        out.push('"');
        rest = &rest[1..];
    }
    out.push_str(rest);
    out
}

/// Whether `s` starts with 24 hex digits and a closing quote.
fn is_id(s: &str) -> bool {
    s.len() > 24 && is_hex24(&s[..24]) && s.as_bytes()[24] == b'"'
}

/// The distinct ids with this prefix, in order of appearance.
fn ids(text: &str, prefix: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let needle = format!("\"{prefix}");
    let mut rest = text;
    while let Some(at) = rest.find(&needle) {
        rest = &rest[at + needle.len()..];
        if is_id(rest) {
            let id = format!("{prefix}{}", &rest[..24]);
            if !found.contains(&id) {
                found.push(id);
            }
        }
    }
    found
}

/// An event as (type, fields after `type` and `sequence_number`, without the closing brace),
/// normalized; checks the framing and that sequence numbers go 0, 1, 2, … without gaps.
fn sse(res: &Response) -> Vec<(String, String)> {
    assert_eq!(
        res.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    assert_eq!(res.header("cache-control"), Some("no-cache"));
    let mut events = Vec::new();
    let mut rest = res.text();
    while !rest.is_empty() {
        let end = rest
            .find("\n\n")
            .expect("every event ends with a blank line");
        let (head, data) = rest[..end].split_once('\n').expect("two lines per event");
        let kind = head.strip_prefix("event: ").expect("event: line");
        let data = data.strip_prefix("data: ").expect("data: line");
        assert!(!data.contains('\n'));
        let prefix = format!(r#"{{"type":"{kind}","sequence_number":{},"#, events.len());
        let fields = data
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{data} starts with {prefix}"))
            .strip_suffix('}')
            .expect("an object");
        events.push((kind.to_string(), normalize(fields)));
        rest = &rest[end + 2..];
    }
    events
}

fn ev(kind: &str, fields: impl Into<String>) -> (String, String) {
    (kind.to_string(), fields.into())
}

fn post(mock: &MockLlm, body: &str) -> Response {
    mock.request("POST", "/v1/responses", body.as_bytes(), &[])
}

const RESP_IN_PROGRESS: &str = r#"{"id":"resp_X","object":"response","created_at":T,"status":"in_progress","model":"mock-model","output":[]}"#;

fn opening() -> Vec<(String, String)> {
    vec![
        ev(
            "response.created",
            format!(r#""response":{RESP_IN_PROGRESS}"#),
        ),
        ev(
            "response.in_progress",
            format!(r#""response":{RESP_IN_PROGRESS}"#),
        ),
    ]
}

/// The output_text part of a finished message.
fn part(text: &str, annotations: &str) -> String {
    format!(r#"{{"type":"output_text","annotations":[{annotations}],"text":"{text}"}}"#)
}

fn message_done(text: &str, annotations: &str) -> String {
    format!(
        r#"{{"id":"msg_X","type":"message","status":"completed","role":"assistant","content":[{}]}}"#,
        part(text, annotations)
    )
}

/// The events of a message item at `k` streaming `pieces`, with an optional annotation.
fn message_events(k: usize, pieces: &[&str], annotation: Option<&str>) -> Vec<(String, String)> {
    let text: String = pieces.concat();
    let at = format!(r#""item_id":"msg_X","output_index":{k},"content_index":0"#);
    let mut out = vec![
        ev(
            "response.output_item.added",
            format!(
                r#""output_index":{k},"item":{{"id":"msg_X","type":"message","status":"in_progress","role":"assistant","content":[]}}"#
            ),
        ),
        ev(
            "response.content_part.added",
            format!(r#"{at},"part":{{"type":"output_text","annotations":[],"text":""}}"#),
        ),
    ];
    for p in pieces {
        out.push(ev(
            "response.output_text.delta",
            format!(r#"{at},"delta":"{p}""#),
        ));
    }
    if let Some(a) = annotation {
        out.push(ev(
            "response.output_text.annotation.added",
            format!(r#"{at},"annotation_index":0,"annotation":{a}"#),
        ));
    }
    let annotations = annotation.unwrap_or("");
    out.push(ev(
        "response.output_text.done",
        format!(r#"{at},"text":"{text}""#),
    ));
    out.push(ev(
        "response.content_part.done",
        format!(r#"{at},"part":{}"#, part(&text, annotations)),
    ));
    out.push(ev(
        "response.output_item.done",
        format!(
            r#""output_index":{k},"item":{}"#,
            message_done(&text, annotations)
        ),
    ));
    out
}

fn usage(input: u64, output: u64, reasoning: u64) -> String {
    format!(
        r#"{{"input_tokens":{input},"input_tokens_details":{{"cached_tokens":0}},"output_tokens":{output},"output_tokens_details":{{"reasoning_tokens":{reasoning}}},"total_tokens":{}}}"#,
        input + output
    )
}

fn completed(output: &[String], usage: &str) -> (String, String) {
    ev(
        "response.completed",
        format!(
            r#""response":{{"id":"resp_X","object":"response","created_at":T,"status":"completed","model":"mock-model","output":[{}],"usage":{usage}}}"#,
            output.join(",")
        ),
    )
}

const TOKENS3: [&str; 3] = ["tok0", " tok1", " tok2"];

#[test]
fn responses_stream_a_default_text_reply() {
    let mock = MockLlm::start(&["--tokens", "3"]);
    let res = post(
        &mock,
        r#"{"model":"ignored","stream":true,"instructions":"be  brief","input":"hello there"}"#,
    );
    assert_eq!(res.status, 200);
    assert!(res.complete);
    let mut want = opening();
    want.extend(message_events(0, &TOKENS3, None));
    want.push(completed(
        &[message_done("tok0 tok1 tok2", "")],
        &usage(4, 3, 0),
    ));
    let events = sse(&res);
    assert_eq!(events, want);
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    // One response id and one message id throughout.
    assert_eq!(ids(res.text(), "resp_").len(), 1);
    assert_eq!(ids(res.text(), "msg_").len(), 1);

    // An array input: the last user message decides (text parts only), every message counts.
    let body = r#"{"stream":true,"input":[{"role":"system","content":"a b"},{"type":"message","role":"user","content":[{"type":"input_text","text":" slow "},{"type":"input_image","image_url":"x"},{"type":"input_text","text":"2 "}]},{"type":"reasoning","summary":[]}]}"#;
    let mut want = opening();
    want.extend(message_events(0, &["tok0", " tok1"], None));
    want.push(completed(&[message_done("tok0 tok1", "")], &usage(4, 2, 0)));
    assert_eq!(sse(&post(&mock, body)), want);
}

#[test]
fn responses_think_streams_a_reasoning_summary_first() {
    let mock = MockLlm::start(&["--tokens", "1"]);
    let body = r#"{"stream":true,"input":[{"role":"user","content":[{"type":"input_text","text":"THINK"},{"type":"input_text","text":"  tw\u00efce \n"}]}]}"#;
    let res = post(&mock, body);
    assert!(res.complete);
    let at = |i: usize| format!(r#""item_id":"rs_X","output_index":0,"summary_index":{i}"#);
    let parts = [
        ("Thinking about twïce.", ["Thinking", " about", " twïce."]),
        ("Checking the answer.", ["Checking", " the", " answer."]),
    ];
    let summary = r#"[{"type":"summary_text","text":"Thinking about twïce."},{"type":"summary_text","text":"Checking the answer."}]"#;
    let mut want = opening();
    want.push(ev(
        "response.output_item.added",
        r#""output_index":0,"item":{"id":"rs_X","type":"reasoning","summary":[]}"#,
    ));
    for (i, (text, pieces)) in parts.iter().enumerate() {
        want.push(ev(
            "response.reasoning_summary_part.added",
            format!(r#"{},"part":{{"type":"summary_text","text":""}}"#, at(i)),
        ));
        for p in pieces {
            want.push(ev(
                "response.reasoning_summary_text.delta",
                format!(r#"{},"delta":"{p}""#, at(i)),
            ));
        }
        want.push(ev(
            "response.reasoning_summary_text.done",
            format!(r#"{},"text":"{text}""#, at(i)),
        ));
        want.push(ev(
            "response.reasoning_summary_part.done",
            format!(
                r#"{},"part":{{"type":"summary_text","text":"{text}"}}"#,
                at(i)
            ),
        ));
    }
    let reasoning = format!(r#"{{"id":"rs_X","type":"reasoning","summary":{summary}}}"#);
    want.push(ev(
        "response.output_item.done",
        format!(r#""output_index":0,"item":{reasoning}"#),
    ));
    want.extend(message_events(1, &["tok0"], None));
    want.push(completed(
        &[reasoning.clone(), message_done("tok0", "")],
        &usage(2, 7, 6),
    ));
    assert_eq!(sse(&res), want);
    assert!(!res.text().contains("encrypted_content"));

    // With include: encrypted_content on the finished reasoning item, in the output too.
    let body = r#"{"stream":true,"include":["message.output_text.logprobs","reasoning.encrypted_content"],"input":"think"}"#;
    let res = post(&mock, body);
    let events = sse(&res);
    let encrypted = r#"{"id":"rs_X","type":"reasoning","summary":[{"type":"summary_text","text":"Thinking about it."},{"type":"summary_text","text":"Checking the answer."}],"encrypted_content":"enc_X"}"#;
    assert_eq!(
        events[2].1,
        r#""output_index":0,"item":{"id":"rs_X","type":"reasoning","summary":[]}"#
    );
    assert_eq!(
        events[15],
        ev(
            "response.output_item.done",
            format!(r#""output_index":0,"item":{encrypted}"#)
        )
    );
    assert_eq!(
        events.last().unwrap(),
        &completed(
            &[encrypted.to_string(), message_done("tok0", "")],
            &usage(1, 7, 6)
        )
    );
    assert_eq!(ids(res.text(), "enc_").len(), 1);
    assert_eq!(ids(res.text(), "rs_").len(), 1);

    // Without stream, the same final object.
    let res = post(
        &mock,
        r#"{"include":["reasoning.encrypted_content"],"input":"think"}"#,
    );
    assert_eq!(
        normalize(res.text()),
        r#"{"id": "resp_X", "object": "response", "created_at": T, "status": "completed", "model": "mock-model", "output": [{"id": "rs_X", "type": "reasoning", "summary": [{"type": "summary_text", "text": "Thinking about it."}, {"type": "summary_text", "text": "Checking the answer."}], "encrypted_content": "enc_X"}, {"id": "msg_X", "type": "message", "status": "completed", "role": "assistant", "content": [{"type": "output_text", "annotations": [], "text": "tok0"}]}], "usage": {"input_tokens": 1, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 6}, "total_tokens": 8}}"#
    );
}

#[test]
fn responses_cite_adds_a_url_citation_in_code_points() {
    let mock = MockLlm::start(&[]);
    let res = post(&mock, r#"{"stream":true,"input":" Cite, please"}"#);
    let annotation = r#"{"type":"url_citation","start_index":13,"end_index":23,"title":"Example source","url":"https://example.com/source"}"#;
    let pieces = ["According", " to", " the", " source,", " tok0."];
    let mut want = opening();
    want.extend(message_events(0, &pieces, Some(annotation)));
    want.push(completed(
        &[message_done("According to the source, tok0.", annotation)],
        &usage(2, 5, 0),
    ));
    let events = sse(&res);
    assert_eq!(events, want);
    // The annotation comes right after the last delta and spans "the source" in code points.
    let at = events
        .iter()
        .position(|(t, _)| t == "response.output_text.annotation.added")
        .unwrap();
    assert_eq!(
        events[at - 1],
        ev(
            "response.output_text.delta",
            r#""item_id":"msg_X","output_index":0,"content_index":0,"delta":" tok0.""#
        )
    );
    let text: Vec<char> = "According to the source, tok0.".chars().collect();
    assert_eq!(text[13..23].iter().collect::<String>(), "the source");

    // Without stream; and over Chat Completions "cite" is the default reply.
    let res = post(&mock, r#"{"input":[{"role":"user","content":"cite"}]}"#);
    assert!(normalize(res.text()).contains(r#""content": [{"type": "output_text", "annotations": [{"type": "url_citation", "start_index": 13, "end_index": 23, "title": "Example source", "url": "https://example.com/source"}], "text": "According to the source, tok0."}]"#));
    let res = mock.post(r#"{"messages":[{"role":"user","content":"cite"}]}"#);
    assert!(res
        .text()
        .contains(r#""content": "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7""#));
}

const FLAT_TOOLS: &str = r#""tools":[{"type":"function","name":"add_task","parameters":{}},{"type":"function","name":"list_tasks"}]"#;

fn call_events(k: usize, name: &str, pieces: &[&str]) -> Vec<(String, String)> {
    let args: String = pieces.concat();
    let at = format!(r#""item_id":"fc_X","output_index":{k}"#);
    let mut out = vec![ev(
        "response.output_item.added",
        format!(
            r#""output_index":{k},"item":{{"id":"fc_X","type":"function_call","status":"in_progress","arguments":"","call_id":"call_X","name":"{name}"}}"#
        ),
    )];
    for p in pieces {
        out.push(ev(
            "response.function_call_arguments.delta",
            format!(r#"{at},"delta":"{p}""#),
        ));
    }
    out.push(ev(
        "response.function_call_arguments.done",
        format!(r#"{at},"arguments":"{args}""#),
    ));
    out.push(ev(
        "response.output_item.done",
        format!(r#""output_index":{k},"item":{}"#, call_done(name, &args)),
    ));
    out
}

fn call_done(name: &str, args: &str) -> String {
    format!(
        r#"{{"id":"fc_X","type":"function_call","status":"completed","arguments":"{args}","call_id":"call_X","name":"{name}"}}"#
    )
}

#[test]
fn responses_add_task_calls_the_function_and_echoes_its_output() {
    let mock = MockLlm::start(&[]);
    let body = format!(r#"{{"stream":true,{FLAT_TOOLS},"input":"add task  Buy \u00e9 "}}"#);
    let res = post(&mock, &body);
    assert!(res.complete);
    let pieces = [r#"{\"tit"#, r#"le\":\"B"#, r#"uy é\"}"#];
    let mut want = opening();
    want.extend(call_events(0, "add_task", &pieces));
    want.push(completed(
        &[call_done("add_task", r#"{\"title\":\"Buy é\"}"#)],
        &usage(4, 3, 0),
    ));
    assert_eq!(sse(&res), want);
    assert_eq!(ids(res.text(), "call_").len(), 1);
    assert_eq!(ids(res.text(), "fc_").len(), 1);

    // The follow-up: the last item is the function's output.
    let output = "\u{e9}".repeat(250);
    let body = format!(
        r#"{{"stream":true,{FLAT_TOOLS},"input":[{{"role":"user","content":"add task x"}},{{"type":"function_call","call_id":"call_1","name":"add_task","arguments":"{{}}"}},{{"type":"function_call_output","call_id":"call_1","output":"Task  {output}"}}]}}"#
    );
    let tail = format!(" {}", "\u{e9}".repeat(194));
    let mut want = opening();
    want.extend(message_events(0, &["Done:", " Task", " ", &tail], None));
    let text = format!("Done: Task  {}", "\u{e9}".repeat(194));
    want.push(completed(&[message_done(&text, "")], &usage(5, 4, 0)));
    assert_eq!(sse(&post(&mock, &body)), want);

    // list tasks: one piece of arguments.
    let body = format!(r#"{{"stream":true,{FLAT_TOOLS},"input":"list tasks"}}"#);
    let mut want = opening();
    want.extend(call_events(0, "list_tasks", &["{}"]));
    want.push(completed(&[call_done("list_tasks", "{}")], &usage(2, 1, 0)));
    assert_eq!(sse(&post(&mock, &body)), want);

    // A tool that is not offered (or offered in the Chat Completions shape): default reply.
    let nested = r#""tools":[{"type":"function","function":{"name":"add_task"}}]"#;
    for body in [
        r#"{"input":"add task x"}"#.to_string(),
        format!(r#"{{{nested},"input":"add task x"}}"#),
    ] {
        let res = post(&mock, &body);
        assert!(
            res.text()
                .contains(r#""text": "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7""#),
            "{body}"
        );
    }
}

#[test]
fn responses_call_calls_the_offered_function_named() {
    let mock = MockLlm::start(&[]);
    let tools = r#""tools":[{"type":"function","name":"draft_report"},{"type":"function","name":"bad_widget"}]"#;
    let body = format!(
        r#"{{"stream":true,{tools},"input":"call draft_report {{ \"topic\": \"Q\u00e9\", \"steps\": 2 }}"}}"#
    );
    let res = post(&mock, &body);
    assert!(res.complete);
    let args = r#"{\"topic\":\"Qé\",\"steps\":2}"#;
    let mut want = opening();
    want.extend(call_events(
        0,
        "draft_report",
        &[r#"{\"topic\""#, r#":\"Qé\",\"s"#, r#"teps\":2}"#],
    ));
    want.push(completed(
        &[call_done("draft_report", args)],
        &usage(8, 3, 0),
    ));
    assert_eq!(sse(&res), want);

    // No arguments: `{}` in one piece.
    let body = format!(r#"{{"stream":true,{tools},"input":"Call bad_widget"}}"#);
    let mut want = opening();
    want.extend(call_events(0, "bad_widget", &["{}"]));
    want.push(completed(&[call_done("bad_widget", "{}")], &usage(2, 1, 0)));
    assert_eq!(sse(&post(&mock, &body)), want);

    // Not offered (here in the Chat Completions shape): the default reply.
    let nested = r#""tools":[{"type":"function","function":{"name":"bad_widget"}}]"#;
    let res = post(&mock, &format!(r#"{{{nested},"input":"call bad_widget"}}"#));
    assert!(res
        .text()
        .contains(r#""text": "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7""#));
}

#[test]
fn responses_two_tools_stream_two_function_calls() {
    let mock = MockLlm::start(&[]);
    let body = format!(r#"{{"stream":true,{FLAT_TOOLS},"input":"two tools"}}"#);
    let res = post(&mock, &body);
    let mut want = opening();
    want.extend(call_events(
        0,
        "add_task",
        &[r#"{\"ti"#, r#"tle\""#, r#":\"a\"}"#],
    ));
    want.extend(call_events(
        1,
        "add_task",
        &[r#"{\"ti"#, r#"tle\""#, r#":\"b\"}"#],
    ));
    want.push(completed(
        &[
            call_done("add_task", r#"{\"title\":\"a\"}"#),
            call_done("add_task", r#"{\"title\":\"b\"}"#),
        ],
        &usage(2, 6, 0),
    ));
    assert_eq!(sse(&res), want);
    assert_eq!(ids(res.text(), "call_").len(), 2);
    assert_eq!(ids(res.text(), "fc_").len(), 2);
}

#[test]
fn responses_fail_midfail_and_invalid_requests() {
    let mock = MockLlm::start(&[]);
    let res = post(&mock, r#"{"stream":true,"input":"FAIL now"}"#);
    assert_eq!(
        (res.status, res.reason.as_str()),
        (500, "Internal Server Error")
    );
    assert_eq!(
        res.text(),
        r#"{"error": {"message": "The server had an error while processing your request. (mock failure)", "type": "server_error", "param": null, "code": "mock_failure"}}"#
    );

    let started = Instant::now();
    let res = post(&mock, r#"{"stream":true,"input":"midfail"}"#);
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(res.status, 200);
    assert!(!res.complete, "the chunked body must not be terminated");
    let mut want = opening();
    want.extend(message_events(0, &TOKENS3, None).into_iter().take(5));
    assert_eq!(sse(&res), want);
    let res = post(&mock, r#"{"input":"midfail"}"#);
    assert_eq!((res.status, res.body.len()), (0, 0));

    let not_object = r#"{"error": {"message": "Request body must be a JSON object.", "type": "invalid_request_error", "param": null, "code": null}}"#;
    let missing = r#"{"error": {"message": "Missing required parameter: 'input'.", "type": "invalid_request_error", "param": "input", "code": "missing_required_parameter"}}"#;
    let wrong = r#"{"error": {"message": "Invalid type for 'input': expected a string or an array of input items.", "type": "invalid_request_error", "param": "input", "code": "invalid_type"}}"#;
    for (body, want) in [
        ("not json", not_object),
        ("[]", not_object),
        (r#"{"stream":true}"#, missing),
        (r#"{"input":null}"#, missing),
        (r#"{"input":{"role":"user"}}"#, wrong),
    ] {
        let res = post(&mock, body);
        assert_eq!((res.status, res.text()), (400, want), "{body}");
    }
    let res = mock.request("GET", "/v1/responses", b"", &[]);
    assert_eq!(
        (res.status, res.header("allow"), res.text()),
        (405, Some("POST"), "405: Method Not Allowed")
    );
}

#[test]
fn responses_without_stream_and_delays() {
    let mock = MockLlm::start(&["--tokens", "1", "--delay-ms", "25"]);
    // 9 events: 8 pauses, with and without stream.
    let started = Instant::now();
    let res = post(&mock, r#"{"stream":true,"input":"hi"}"#);
    assert!(started.elapsed() >= Duration::from_millis(8 * 25));
    assert_eq!(sse(&res).len(), 9);
    let started = Instant::now();
    let res = post(
        &mock,
        r#"{"input":[{"role":"user","content":"h\u00e9llo"}]}"#,
    );
    assert!(started.elapsed() >= Duration::from_millis(8 * 25));
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        normalize(res.text()),
        r#"{"id": "resp_X", "object": "response", "created_at": T, "status": "completed", "model": "mock-model", "output": [{"id": "msg_X", "type": "message", "status": "completed", "role": "assistant", "content": [{"type": "output_text", "annotations": [], "text": "tok0"}]}], "usage": {"input_tokens": 1, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 1, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 2}}"#
    );
    // slow N: the slow delay between events.
    let mock = MockLlm::start(&["--slow-delay-ms", "30"]);
    let started = Instant::now();
    let res = post(&mock, r#"{"stream":true,"input":"slow 2"}"#);
    assert!(started.elapsed() >= Duration::from_millis(9 * 30));
    assert_eq!(sse(&res).len(), 10);
}

/// A form part: name, filename, content type, bytes.
type Part<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

/// A multipart/form-data body and its `Content-Type`.
fn form(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "mockBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, filename, content_type, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{name}\"");
        if let Some(f) = filename {
            disposition.push_str(&format!("; filename=\"{f}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(t) = content_type {
            body.extend_from_slice(format!("Content-Type: {t}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn transcribe(mock: &MockLlm, content_type: &str, body: &[u8]) -> Response {
    mock.request(
        "POST",
        "/v1/audio/transcriptions",
        body,
        &[("Content-Type", content_type)],
    )
}

#[test]
fn transcriptions_describe_the_file_and_refuse_bad_ones() {
    let path = temp_path("transcriptions.jsonl");
    let mock = MockLlm::start(&["--log", path.to_str().unwrap()]);
    let error = |message: &str, param: &str| {
        format!(
            r#"{{"error": {{"message": "{message}", "type": "invalid_request_error", "param": {param}, "code": null}}}}"#
        )
    };

    let audio = vec![7u8; 3000];
    let (ct, body) = form(&[
        ("language", None, None, b"en".as_slice()),
        (
            "file",
            Some("voice.webm"),
            Some("audio/webm;codecs=opus"),
            audio.as_slice(),
        ),
        ("model", None, None, b"whisper-\xc3\xa9".as_slice()),
    ]);
    let res = transcribe(&mock, &ct, &body);
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        res.text(),
        r#"{"text": "transcribed 3000 bytes of audio/webm;codecs=opus"}"#
    );

    // No Content-Type on the part: application/octet-stream.
    let (ct, body) = form(&[("file", Some("a.wav"), None, b"RIFF".as_slice())]);
    let res = transcribe(&mock, &ct, &body);
    assert_eq!(
        (res.status, res.text()),
        (
            200,
            r#"{"text": "transcribed 4 bytes of application/octet-stream"}"#
        )
    );

    let (ct, body) = form(&[("model", None, None, b"whisper-1".as_slice())]);
    let res = transcribe(&mock, &ct, &body);
    assert_eq!(
        (res.status, res.text()),
        (
            400,
            error("Missing required parameter: 'file'.", r#""file""#).as_str()
        )
    );

    let (ct, body) = form(&[
        ("file", Some("e.mp3"), Some("audio/mpeg"), b"".as_slice()),
        ("model", None, None, b"m".as_slice()),
    ]);
    let res = transcribe(&mock, &ct, &body);
    assert_eq!(
        (res.status, res.text()),
        (400, error("The audio file is empty.", r#""file""#).as_str())
    );

    let (ct, body) = form(&[(
        "file",
        Some("g.wav"),
        Some("audio/wav"),
        b"garbage\x00\x01".as_slice(),
    )]);
    let res = transcribe(&mock, &ct, &body);
    assert_eq!(
        (res.status, res.text()),
        (
            400,
            error(
                "Invalid file format: the audio could not be decoded.",
                r#""file""#
            )
            .as_str()
        )
    );

    let res = transcribe(&mock, "application/json", br#"{"file":"x"}"#);
    assert_eq!(
        (res.status, res.text()),
        (
            400,
            error("Could not parse the multipart form.", "null").as_str()
        )
    );

    drop(mock);
    let log = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        log,
        "{\"_transcription\":{\"model\":\"whisper-\u{e9}\",\"filename\":\"voice.webm\",\"content_type\":\"audio/webm;codecs=opus\",\"bytes\":3000}}\n\
         {\"_transcription\":{\"model\":null,\"filename\":\"a.wav\",\"content_type\":\"application/octet-stream\",\"bytes\":4}}\n\
         {\"_transcription\":{\"model\":\"whisper-1\",\"filename\":null,\"content_type\":null,\"bytes\":null}}\n\
         {\"_transcription\":{\"model\":\"m\",\"filename\":\"e.mp3\",\"content_type\":\"audio/mpeg\",\"bytes\":0}}\n\
         {\"_transcription\":{\"model\":null,\"filename\":\"g.wav\",\"content_type\":\"audio/wav\",\"bytes\":9}}\n\
         {\"_transcription\":{\"model\":null,\"filename\":null,\"content_type\":null,\"bytes\":null}}\n"
    );
}

#[test]
fn responses_bodies_are_logged_like_chat_completions() {
    let path = temp_path("responses.jsonl");
    let mock = MockLlm::start(&["--log", path.to_str().unwrap()]);
    post(
        &mock,
        r#"{ "input" : "h\u00e9", "stream": false, "b": 1.50 }"#,
    );
    post(&mock, "nope");
    drop(mock);
    let log = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        log,
        "{\"input\":\"h\u{e9}\",\"stream\":false,\"b\":1.5}\n{\"_raw\":\"nope\"}\n"
    );
}
