//! Black-box tests of the `mock-llm` binary: each test starts the real server on `--port 0`,
//! reads its `listening on http://ADDR` line and talks raw HTTP/1.1 to it. The expected bytes
//! were captured from the reference `mock_llm.py` for the same requests (ids and `created`
//! normalized), so these tests pin the reply script byte for byte. The `think` and `call` tests
//! pin this mock's extensions beyond the reference (README.md), like the tests in
//! `extensions.rs`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{is_hex24, temp_path, MockLlm, Response};

/// Replaces the random parts (`chatcmpl-…`, `call_…` ids and the `created` timestamp) with
/// `X`/`T`, after checking their shape.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let next = ["chatcmpl-", "call_", "\"created\":"]
            .iter()
            .filter_map(|p| rest.find(p).map(|at| (at, *p)))
            .min();
        let Some((at, prefix)) = next else { break };
        out.push_str(&rest[..at + prefix.len()]);
        rest = &rest[at + prefix.len()..];
        if prefix == "\"created\":" {
            if let Some(r) = rest.strip_prefix(' ') {
                out.push(' ');
                rest = r;
            }
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            assert_eq!(digits, 10, "created is a Unix timestamp: {rest:.20}");
            out.push('T');
            rest = &rest[digits..];
        } else {
            assert!(
                is_hex24(&rest[..24.min(rest.len())]),
                "24 hex digits after {prefix}"
            );
            let id = &rest[..24];
            assert_eq!(&id[12..13], "4", "uuid4 version digit in {id}");
            assert!("89ab".contains(&id[16..17]), "uuid4 variant digit in {id}");
            out.push('X');
            rest = &rest[24..];
        }
    }
    out.push_str(rest);
    out
}

fn normalized_events(res: &Response) -> Vec<String> {
    res.events().into_iter().map(normalize).collect()
}

/// `data:` payload of a text chunk with the given delta.
fn chunk(delta: &str, finish: &str, usage: bool) -> String {
    format!(
        r#"{{"id":"chatcmpl-X","object":"chat.completion.chunk","created":T,"model":"mock-model","system_fingerprint":"fp_mock","choices":[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}]{}}}"#,
        if usage { r#","usage":null"# } else { "" }
    )
}

fn text_stream(pieces: &[&str], usage: Option<(u64, u64)>) -> Vec<String> {
    let with_usage = usage.is_some();
    let mut out = vec![chunk(
        r#"{"role":"assistant","content":"","refusal":null}"#,
        "null",
        with_usage,
    )];
    for p in pieces {
        out.push(chunk(
            &format!(r#"{{"content":"{p}"}}"#),
            "null",
            with_usage,
        ));
    }
    out.push(chunk("{}", r#""stop""#, with_usage));
    if let Some((prompt, completion)) = usage {
        out.push(format!(
            r#"{{"id":"chatcmpl-X","object":"chat.completion.chunk","created":T,"model":"mock-model","system_fingerprint":"fp_mock","choices":[],"usage":{{"prompt_tokens":{prompt},"completion_tokens":{completion},"total_tokens":{}}}}}"#,
            prompt + completion
        ));
    }
    out.push("[DONE]".into());
    out
}

const TOOLS: &str = r#""tools":[{"type":"function","function":{"name":"add_task","parameters":{}}},{"type":"function","function":{"name":"list_tasks"}}]"#;

fn user(text: &str) -> String {
    format!(r#"{{"stream":true,"messages":[{{"role":"user","content":"{text}"}}]}}"#)
}

fn user_with_tools(text: &str) -> String {
    format!(r#"{{"stream":true,{TOOLS},"messages":[{{"role":"user","content":"{text}"}}]}}"#)
}

const EIGHT: [&str; 8] = [
    "tok0", " tok1", " tok2", " tok3", " tok4", " tok5", " tok6", " tok7",
];

#[test]
fn listening_line_models_and_routing() {
    let mock = MockLlm::start(&["--model", "m\u{e9}"]);
    assert!(mock.addr.ip().is_loopback());
    let res = mock.request("GET", "/v1/models", b"", &[]);
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        res.text(),
        r#"{"object": "list", "data": [{"id": "m\u00e9", "object": "model", "created": 1700000000, "owned_by": "mock"}]}"#
    );
    let res = mock.request("DELETE", "/v1/models", b"", &[]);
    assert_eq!(
        (res.status, res.header("allow"), res.text()),
        (405, Some("GET,HEAD"), "405: Method Not Allowed")
    );
    let res = mock.request("GET", "/v1/chat/completions", b"", &[]);
    assert_eq!(
        (res.status, res.header("allow"), res.text()),
        (405, Some("POST"), "405: Method Not Allowed")
    );
    let res = mock.request("GET", "/nope", b"", &[]);
    assert_eq!((res.status, res.text()), (404, "404: Not Found"));
}

#[test]
fn refuses_non_loopback_hosts() {
    let out = Command::new(env!("CARGO_BIN_EXE_mock-llm"))
        .args(["--host", "0.0.0.0", "--port", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "mock-llm binds to loopback addresses only\n"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_mock-llm"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn default_reply_streams_eight_word_tokens() {
    let mock = MockLlm::start(&[]);
    let res = mock.post(&user("hello"));
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    assert_eq!(res.header("cache-control"), Some("no-cache"));
    assert!(res.complete);
    assert_eq!(normalized_events(&res), text_stream(&EIGHT, None));
    // One id per completion.
    let ids: Vec<&str> = res.events()[..10].iter().map(|e| &e[7..40]).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
}

#[test]
fn tokens_option_sets_the_default_reply_length() {
    let mock = MockLlm::start(&["--tokens", "3"]);
    assert_eq!(
        normalized_events(&mock.post(&user("hi"))),
        text_stream(&["tok0", " tok1", " tok2"], None)
    );
    let mock = MockLlm::start(&["--tokens", "0"]);
    assert_eq!(
        normalized_events(&mock.post(&user("hi"))),
        text_stream(&[""], None)
    );
}

#[test]
fn add_task_streams_one_tool_call_in_three_argument_pieces() {
    let mock = MockLlm::start(&[]);
    let res = mock.post(&user_with_tools("  ADD TASK   Buy milk \u{e9} "));
    assert!(res.complete);
    let head = r#"{"id":"chatcmpl-X","object":"chat.completion.chunk","created":T,"model":"mock-model","system_fingerprint":"fp_mock","choices":[{"index":0,"delta":"#;
    let expected = [
        r#"{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_X","type":"function","function":{"name":"add_task","arguments":""}}],"refusal":null},"logprobs":null,"finish_reason":null}]}"#,
        r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"title"}}]},"logprobs":null,"finish_reason":null}]}"#,
        r#"{"tool_calls":[{"index":0,"function":{"arguments":"\":\"Buy "}}]},"logprobs":null,"finish_reason":null}]}"#,
        "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"milk \u{e9}\\\"}\"}}]},\"logprobs\":null,\"finish_reason\":null}]}",
        r#"{},"logprobs":null,"finish_reason":"tool_calls"}]}"#,
    ];
    let mut want: Vec<String> = expected.iter().map(|e| format!("{head}{e}")).collect();
    want.push("[DONE]".into());
    assert_eq!(normalized_events(&res), want);
}

#[test]
fn list_tasks_streams_empty_arguments_in_one_piece() {
    let mock = MockLlm::start(&[]);
    let events = normalized_events(&mock.post(&user_with_tools("List Tasks, please")));
    assert_eq!(events.len(), 4);
    assert!(events[0].contains(r#""function":{"name":"list_tasks","arguments":""}"#));
    assert!(events[1].contains(r#"{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}"#));
    assert!(events[2].contains(r#""finish_reason":"tool_calls""#));
}

#[test]
fn tool_commands_fall_through_when_the_tool_is_not_offered() {
    let mock = MockLlm::start(&[]);
    let only_add = r#""tools":[{"type":"function","function":{"name":"add_task"}}]"#;
    for body in [
        user("add task buy milk"),
        user("two tools"),
        format!(
            r#"{{"stream":true,{only_add},"messages":[{{"role":"user","content":"list tasks"}}]}}"#
        ),
        // `\b`: "list tasksx" is not the command.
        user_with_tools("list tasksx"),
    ] {
        assert_eq!(
            normalized_events(&mock.post(&body)),
            text_stream(&EIGHT, None),
            "{body}"
        );
    }
}

#[test]
fn two_tools_stream_two_parallel_calls_with_usage() {
    let mock = MockLlm::start(&[]);
    let body = format!(
        r#"{{"stream":true,"stream_options":{{"include_usage":true}},{TOOLS},"messages":[{{"role":"user","content":"two tools"}}]}}"#
    );
    let res = mock.post(&body);
    let head = r#"{"id":"chatcmpl-X","object":"chat.completion.chunk","created":T,"model":"mock-model","system_fingerprint":"fp_mock","choices":["#;
    let tail = r#","logprobs":null,"finish_reason":null}],"usage":null}"#;
    let mut want = vec![format!(
        r#"{head}{{"index":0,"delta":{{"role":"assistant","content":null,"tool_calls":[{{"index":0,"id":"call_X","type":"function","function":{{"name":"add_task","arguments":""}}}}],"refusal":null}}{tail}"#
    )];
    for (index, title) in [(0, "a"), (1, "b")] {
        if index == 1 {
            want.push(format!(
                r#"{head}{{"index":0,"delta":{{"tool_calls":[{{"index":1,"id":"call_X","type":"function","function":{{"name":"add_task","arguments":""}}}}]}}{tail}"#
            ));
        }
        for piece in [r#"{\"ti"#, r#"tle\""#, &format!(r#":\"{title}\"}}"#)] {
            want.push(format!(
                r#"{head}{{"index":0,"delta":{{"tool_calls":[{{"index":{index},"function":{{"arguments":"{piece}"}}}}]}}{tail}"#
            ));
        }
    }
    want.push(format!(
        r#"{head}{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"tool_calls"}}],"usage":null}}"#
    ));
    want.push(format!(
        r#"{head}],"usage":{{"prompt_tokens":2,"completion_tokens":6,"total_tokens":8}}}}"#
    ));
    want.push("[DONE]".into());
    assert_eq!(normalized_events(&res), want);
    // Two distinct call ids.
    let events = res.events();
    assert_ne!(
        &events[0][events[0].find("call_").unwrap()..][..29],
        &events[4][events[4].find("call_").unwrap()..][..29]
    );
}

#[test]
fn midfail_aborts_the_connection_mid_stream() {
    let mock = MockLlm::start(&[]);
    let started = Instant::now();
    let res = mock.post(&user("midfail please"));
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "the pause before the abort"
    );
    assert_eq!(res.status, 200);
    assert!(!res.complete, "the chunked body must not be terminated");
    let mut want = text_stream(&["tok0", " tok1", " tok2"], None);
    want.truncate(4); // role + 3 text chunks; no finish chunk, no [DONE]
    assert_eq!(normalized_events(&res), want);

    // stream=false: the connection closes before any response.
    let res = mock.post(r#"{"messages":[{"role":"user","content":"midfail"}]}"#);
    assert_eq!((res.status, res.body.len()), (0, 0));
}

#[test]
fn fail_is_an_http_500_with_an_openai_error_body() {
    let mock = MockLlm::start(&[]);
    let res = mock.post(&user("Fail!"));
    assert_eq!(
        (res.status, res.reason.as_str()),
        (500, "Internal Server Error")
    );
    assert_eq!(
        res.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        res.text(),
        r#"{"error": {"message": "The server had an error while processing your request. (mock failure)", "type": "server_error", "param": null, "code": "mock_failure"}}"#
    );
    // "failure" is not "fail\b".
    assert_eq!(mock.post(&user("failure")).status, 200);
}

#[test]
fn slow_n_streams_n_tokens_with_the_slow_delay() {
    let mock = MockLlm::start(&["--slow-delay-ms", "40"]);
    let started = Instant::now();
    let res = mock.post(&user("slow 3"));
    let elapsed = started.elapsed();
    assert_eq!(
        normalized_events(&res),
        text_stream(&["tok0", " tok1", " tok2"], None)
    );
    // role, 3 tokens, finish: 4 pauses of 40 ms.
    assert!(elapsed >= Duration::from_millis(160), "{elapsed:?}");
    // Unicode digits count, like Python's \d and int().
    let res = mock.post(&user("SLOW \u{0662}"));
    assert_eq!(
        normalized_events(&res),
        text_stream(&["tok0", " tok1"], None)
    );
    // No delay configured: the default reply does not sleep.
    let started = Instant::now();
    mock.post(&user("hi"));
    assert!(started.elapsed() < Duration::from_millis(150));
}

#[test]
fn tool_result_is_echoed_as_done_truncated_to_200_code_points() {
    let mock = MockLlm::start(&[]);
    let long = "\u{e9}".repeat(250);
    let body = format!(
        r#"{{"stream":true,"messages":[{{"role":"user","content":"add task x"}},{{"role":"tool","tool_call_id":"c","content":"{long}"}}]}}"#
    );
    let want = format!(" {}", "\u{e9}".repeat(200));
    assert_eq!(
        normalized_events(&mock.post(&body)),
        text_stream(&["Done:", &want], None)
    );

    // Array content: the text parts, concatenated; other parts ignored.
    let body = r#"{"stream":true,"messages":[{"role":"tool","content":[{"type":"text","text":"ok  a"},{"type":"image_url","text":"no"},{"type":"text","text":"\"b\""}]}]}"#;
    assert_eq!(
        normalized_events(&mock.post(body)),
        text_stream(&["Done:", " ok", " ", r#" a\"b\""#], None)
    );
}

#[test]
fn stream_false_returns_one_chat_completion_object() {
    let mock = MockLlm::start(&[]);
    let res = mock.post(r#"{"messages":[{"role":"user","content":"hello there"}]}"#);
    assert_eq!(
        res.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        normalize(res.text()),
        r#"{"id": "chatcmpl-X", "object": "chat.completion", "created": T, "model": "mock-model", "system_fingerprint": "fp_mock", "choices": [{"index": 0, "message": {"role": "assistant", "content": "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7", "refusal": null}, "logprobs": null, "finish_reason": "stop"}], "usage": {"prompt_tokens": 2, "completion_tokens": 8, "total_tokens": 10}}"#
    );
    let body = format!(
        r#"{{{TOOLS},"model":"gpt-é","messages":[{{"role":"user","content":"add task é"}}]}}"#
    );
    assert_eq!(
        normalize(mock.post(&body).text()),
        r#"{"id": "chatcmpl-X", "object": "chat.completion", "created": T, "model": "gpt-\u00e9", "system_fingerprint": "fp_mock", "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": null, "tool_calls": [{"id": "call_X", "type": "function", "function": {"name": "add_task", "arguments": "{\"title\":\"\u00e9\"}"}}]}, "logprobs": null, "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}}"#
    );
}

#[test]
fn include_usage_adds_usage_null_and_a_final_usage_chunk() {
    let mock = MockLlm::start(&["--model", "ignored"]);
    let body = r#"{"model":"mock-model","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"be  brief"},{"role":"user","content":[{"type":"text","text":"hello there you"}]},"junk"]}"#;
    assert_eq!(
        normalized_events(&mock.post(body)),
        text_stream(&EIGHT, Some((5, 8)))
    );
    // include_usage must be exactly true.
    let body = r#"{"stream":true,"stream_options":{"include_usage":1},"messages":[{"role":"user","content":"x"}]}"#;
    assert_eq!(mock.post(body).events().len(), 11);
}

#[test]
fn invalid_requests_get_400() {
    let mock = MockLlm::start(&[]);
    let not_object = r#"{"error": {"message": "Request body must be a JSON object.", "type": "invalid_request_error", "param": null, "code": null}}"#;
    let no_messages = r#"{"error": {"message": "'messages' must be a non-empty array.", "type": "invalid_request_error", "param": null, "code": "invalid_value"}}"#;
    for (body, want) in [
        ("not json", not_object),
        ("[1]", not_object),
        ("", not_object),
        (r#"{"messages":[]}"#, no_messages),
        (r#"{"messages":{"role":"user"}}"#, no_messages),
    ] {
        let res = mock.post(body);
        assert_eq!((res.status, res.text()), (400, want), "{body}");
    }
    // A truthy non-iterable `tools` crashes the reference: aiohttp's 500 page.
    let res = mock.post(r#"{"tools":1,"messages":[{"role":"user","content":"x"}]}"#);
    assert_eq!(
        (res.status, res.text()),
        (
            500,
            "500 Internal Server Error\n\nServer got itself in trouble"
        )
    );
}

#[test]
fn request_log_appends_each_body_as_compact_json() {
    let path = temp_path("log.jsonl");
    std::fs::write(&path, "previous\n").unwrap();
    let mock = MockLlm::start(&["--log", path.to_str().unwrap()]);
    mock.post("{ \"b\" : 1.50, \"messages\" : [ {\"role\": \"user\", \"content\": \"caf\\u00e9 \\ud83d\\ude00\"} ], \"b\": 1e300, \"z\": -0.0 }");
    mock.post("not json \u{e9}");
    mock.request("POST", "/v1/chat/completions", b"\xff{", &[]);
    mock.post(r#"{"messages":[{"role":"user","content":"midfail"}]}"#);
    drop(mock);
    let log = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        log,
        "previous\n\
         {\"b\":1e+300,\"messages\":[{\"role\":\"user\",\"content\":\"caf\u{e9} \u{1f600}\"}],\"z\":-0.0}\n\
         {\"_raw\":\"not json \u{e9}\"}\n\
         {\"_raw\":\"\u{fffd}{\"}\n\
         {\"messages\":[{\"role\":\"user\",\"content\":\"midfail\"}]}\n"
    );
}

#[test]
fn think_streams_reasoning_content_before_the_text() {
    let mock = MockLlm::start(&["--tokens", "2"]);
    let body = r#"{"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":" THINK about  x \n"}]}"#;
    let res = mock.post(body);
    assert!(res.complete);
    let mut want = vec![chunk(
        r#"{"role":"assistant","content":null,"reasoning_content":"Thinking","refusal":null}"#,
        "null",
        true,
    )];
    for piece in [
        " about",
        " about",
        " ",
        r" x.\n\nChecking",
        " the",
        " answer.",
    ] {
        want.push(chunk(
            &format!(r#"{{"reasoning_content":"{piece}"}}"#),
            "null",
            true,
        ));
    }
    for piece in ["tok0", " tok1"] {
        want.push(chunk(&format!(r#"{{"content":"{piece}"}}"#), "null", true));
    }
    want.push(chunk("{}", r#""stop""#, true));
    want.push(
        r#"{"id":"chatcmpl-X","object":"chat.completion.chunk","created":T,"model":"mock-model","system_fingerprint":"fp_mock","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":9,"total_tokens":12}}"#.into(),
    );
    want.push("[DONE]".into());
    assert_eq!(normalized_events(&res), want);

    // "think" alone reasons about "it"; "thinking" is not the command.
    let events = normalized_events(&mock.post(&user("Think!")));
    assert!(events[2].contains(r#""delta":{"reasoning_content":" !.\n\nChecking"}"#));
    let events = normalized_events(&mock.post(&user("think")));
    assert!(events[2].contains(r#""delta":{"reasoning_content":" it.\n\nChecking"}"#));
    assert_eq!(
        normalized_events(&mock.post(&user("thinking"))),
        text_stream(&["tok0", " tok1"], None)
    );

    // Without stream: content and reasoning_content, after the same pauses.
    let mock = MockLlm::start(&["--tokens", "2", "--delay-ms", "30"]);
    let started = Instant::now();
    let res = mock.post(r#"{"model":"m","messages":[{"role":"user","content":"think \u00e9"}]}"#);
    assert!(started.elapsed() >= Duration::from_millis(7 * 30));
    assert_eq!(
        normalize(res.text()),
        r#"{"id": "chatcmpl-X", "object": "chat.completion", "created": T, "model": "m", "system_fingerprint": "fp_mock", "choices": [{"index": 0, "message": {"role": "assistant", "content": "tok0 tok1", "reasoning_content": "Thinking about \u00e9.\n\nChecking the answer.", "refusal": null}, "logprobs": null, "finish_reason": "stop"}], "usage": {"prompt_tokens": 2, "completion_tokens": 7, "total_tokens": 9}}"#
    );
}

#[test]
fn call_streams_one_tool_call_to_the_offered_tool_named() {
    let mock = MockLlm::start(&[]);
    let tools = r#""tools":[{"type":"function","function":{"name":"show_task"}},{"type":"function","function":{"name":"bad_widget"}}]"#;
    let ask = |text: &str| {
        format!(r#"{{"stream":true,{tools},"messages":[{{"role":"user","content":"{text}"}}]}}"#)
    };
    let head = r#"{"id":"chatcmpl-X","object":"chat.completion.chunk","created":T,"model":"mock-model","system_fingerprint":"fp_mock","choices":[{"index":0,"delta":"#;
    let call_stream = |name: &str, pieces: &[&str]| {
        let mut want = vec![format!(
            r#"{head}{{"role":"assistant","content":null,"tool_calls":[{{"index":0,"id":"call_X","type":"function","function":{{"name":"{name}","arguments":""}}}}],"refusal":null}},"logprobs":null,"finish_reason":null}}]}}"#
        )];
        for p in pieces {
            want.push(format!(
                r#"{head}{{"tool_calls":[{{"index":0,"function":{{"arguments":"{p}"}}}}]}},"logprobs":null,"finish_reason":null}}]}}"#
            ));
        }
        want.push(format!(
            r#"{head}{{}},"logprobs":null,"finish_reason":"tool_calls"}}]}}"#
        ));
        want.push("[DONE]".into());
        want
    };

    // The object is re-serialized compactly (raw UTF-8), then cut in 3 pieces.
    let res = mock.post(&ask(r#" CALL show_task {\"task_id\" :  \"t\u00e9\"} "#));
    assert!(res.complete);
    assert_eq!(
        normalized_events(&res),
        call_stream("show_task", &[r#"{\"tas"#, r#"k_id\""#, r#":\"té\"}"#])
    );
    // No object, or one that is not JSON: `{}`, in one piece.
    for text in ["call bad_widget", r#"call bad_widget {nope}"#] {
        assert_eq!(
            normalized_events(&mock.post(&ask(text))),
            call_stream("bad_widget", &["{}"]),
            "{text}"
        );
    }
    // A tool that is not offered (names are exact), or text after the object: default reply.
    for text in [
        "call Show_task {}",
        "call list_tasks",
        r#"call show_task {} now"#,
    ] {
        assert_eq!(
            normalized_events(&mock.post(&ask(text))),
            text_stream(&EIGHT, None),
            "{text}"
        );
    }

    // Without stream: one chat.completion with the call.
    let body = format!(
        r#"{{{tools},"messages":[{{"role":"user","content":"call show_task {{\"task_id\":\"x\"}}"}}]}}"#
    );
    assert_eq!(
        normalize(mock.post(&body).text()),
        r#"{"id": "chatcmpl-X", "object": "chat.completion", "created": T, "model": "mock-model", "system_fingerprint": "fp_mock", "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": null, "tool_calls": [{"id": "call_X", "type": "function", "function": {"name": "show_task", "arguments": "{\"task_id\":\"x\"}"}}]}, "logprobs": null, "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}}"#
    );
}
