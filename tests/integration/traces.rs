//! Traces over OTLP (README "Traces"), against the collector stand-in: one trace per request
//! across the actors (HTTP server span → ChatKit operation → turn → model calls, tool call,
//! commits), the incoming `traceparent` continued and the outgoing one seen by the model and
//! the tool server, the GenAI attributes, no secret in any span, log lines naming their
//! trace, and a dead or hanging collector costing requests nothing.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

const API_KEY: &str = "sk-trace-test-key-0123456789";

/// `bytes` random bytes in lowercase hex (trace and span ids).
fn random_hex(bytes: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    while out.len() < bytes * 2 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos());
        out.push_str(&format!("{:016x}", hasher.finish()));
    }
    out.truncate(bytes * 2);
    out
}

/// A server exporting to `endpoint` (every 50 ms), with the `tasks` MCP server and `extra`.
fn traced_server(endpoint: &str, mcp: Option<&McpServer>, extra: &[(&str, &str)]) -> TestServer {
    let config = match mcp {
        Some(mcp) => format!(
            "[[mcp.servers]]\nname = \"tasks\"\nurl = \"{}\"\ntimeout_secs = 5\nforward_user_token = true\n",
            mcp.url()
        ),
        None => String::new(),
    };
    let mut env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "2000"),
        ("CHATKIT__TITLES__ENABLED", "false"),
        ("OPENAI_API_KEY", API_KEY),
    ];
    env.extend_from_slice(extra);
    TestServer::start_with_config(&config, &env)
}

/// Creates a thread with `text`, sending `traceparent` (if any) with the request.
async fn create_traced(
    server: &TestServer,
    token: &str,
    text: &str,
    traceparent: Option<&str>,
) -> Stream {
    post_traced(server, token, &create_request(text), traceparent).await
}

/// A streamed request with `traceparent` (if any).
async fn post_traced(
    server: &TestServer,
    token: &str,
    body: &Value,
    traceparent: Option<&str>,
) -> Stream {
    let mut request = reqwest::Client::new()
        .post(server.url("/chatkit"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    Stream::parse(Reply::read(request.send().await.expect("request sent")).await)
}

fn named<'a>(spans: &'a [ReceivedSpan], name: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn one<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    let found = named(spans, name);
    assert_eq!(found.len(), 1, "one {name} span: {}", render_tree(spans));
    found[0]
}

/// Whether `span` descends from `ancestor`.
fn descends(spans: &[ReceivedSpan], span: &ReceivedSpan, ancestor: &ReceivedSpan) -> bool {
    let mut parent = span.parent_span_id.clone();
    while !parent.is_empty() {
        if parent == ancestor.span_id {
            return true;
        }
        parent = spans
            .iter()
            .find(|s| s.span_id == parent)
            .map(|s| s.parent_span_id.clone())
            .unwrap_or_default();
    }
    false
}

/// The span id of a `traceparent` of `trace_id`, if it is one.
fn parent_in(traceparent: &str, trace_id: &str) -> Option<String> {
    let parts: Vec<&str> = traceparent.split('-').collect();
    (parts.len() == 4 && parts[1] == trace_id).then(|| parts[2].to_string())
}

#[tokio::test]
async fn a_tool_turn_is_one_trace_from_the_http_request_to_the_commit() {
    let collector = Collector::start();
    let mcp = McpServer::start(&[]);
    let server = traced_server(&collector.endpoint(), Some(&mcp), &[]);
    let alice = token("alice");
    let trace_id = random_hex(16);
    let caller_span = random_hex(8);
    let incoming = format!("00-{trace_id}-{caller_span}-01");

    let added = create_traced(&server, &alice, "add task buy milk", Some(&incoming)).await;
    added.assert_answered();
    let thread_id = added.thread_id();
    let spans = collector
        .trace(&trace_id, |spans| {
            !named(spans, "POST /chatkit").is_empty()
                && !named(spans, "invoke_agent chatkit").is_empty()
        })
        .await;
    let tree = render_tree(&spans);
    println!("the tool turn's trace:\n{tree}");
    for span in &spans {
        println!("{} {:?}", span.name, span.attributes);
    }

    // The HTTP server span continues the caller's trace.
    let http = one(&spans, "POST /chatkit");
    assert_eq!(http.parent_span_id, caller_span, "{tree}");
    assert_eq!(http.kind, 2, "server");
    assert_eq!(http.attr("http.request.method"), Some("POST"));
    assert_eq!(http.attr("http.route"), Some("/chatkit"));
    assert_eq!(http.attr("http.response.status_code"), Some("200"));
    assert_ne!(http.status, 2, "not an error");
    assert_eq!(
        http.resource.get("service.name").map(String::as_str),
        Some("chatkit-rs")
    );

    // The turn, though it runs on the thread's actor, is its descendant.
    let operation = one(&spans, "chatkit threads.create");
    assert_eq!(operation.parent_span_id, http.span_id, "{tree}");
    assert_eq!(operation.attr("user_id"), Some("alice"));
    let turn = one(&spans, "invoke_agent chatkit");
    assert_eq!(turn.parent_span_id, operation.span_id, "{tree}");
    assert_eq!(turn.attr("gen_ai.operation.name"), Some("invoke_agent"));
    assert_eq!(
        turn.attr("gen_ai.conversation.id"),
        Some(thread_id.as_str())
    );
    assert_eq!(turn.attr("chatkit.turn.outcome"), Some("answered"));

    // Two model calls (the tool round, the answer), with the GenAI attributes.
    let mut chats = named(&spans, "chat gpt-4o-mini");
    chats.sort_by_key(|s| s.start_ns);
    assert_eq!(chats.len(), 2, "{tree}");
    for chat in &chats {
        assert_eq!(chat.parent_span_id, turn.span_id, "{tree}");
        assert_eq!(chat.kind, 3, "client");
        assert_eq!(chat.attr("gen_ai.operation.name"), Some("chat"));
        assert_eq!(chat.attr("gen_ai.provider.name"), Some("openai_compatible"));
        assert_eq!(chat.attr("gen_ai.request.model"), Some("gpt-4o-mini"));
        assert!(chat.attr("gen_ai.response.model").is_some(), "{chat:?}");
        assert!(
            chat.attr("gen_ai.server.time_to_first_token").is_some(),
            "{chat:?}"
        );
        assert!(
            chat.attr("gen_ai.input.messages").is_none(),
            "content is not captured"
        );
    }
    assert_eq!(
        chats[0].attr("gen_ai.response.finish_reasons"),
        Some("tool_calls")
    );
    assert_eq!(
        chats[1].attr("gen_ai.response.finish_reasons"),
        Some("stop")
    );

    // The tool call, between them.
    let tool = one(&spans, "execute_tool add_task");
    assert_eq!(tool.parent_span_id, turn.span_id, "{tree}");
    assert_eq!(tool.attr("gen_ai.tool.name"), Some("add_task"));
    assert_eq!(tool.attr("chatkit.mcp.server"), Some("tasks"));
    assert!(chats[0].end_ns <= tool.start_ns && tool.end_ns <= chats[1].start_ns + 1_000_000);

    // The turn's writes committed in group commits that descend from it.
    let commits = named(&spans, "COMMIT");
    assert!(!commits.is_empty(), "{tree}");
    for commit in &commits {
        assert!(descends(&spans, commit, turn), "{tree}");
        assert_eq!(commit.attr("db.system.name"), Some("postgresql"));
        assert!(commit.attr("db.operation.batch.size").is_some());
    }

    // The trace went on: the model saw each call's span as its parent, the tool server the
    // tool call's.
    let model_parents: Vec<String> = shared()
        .mock
        .requests()
        .iter()
        .filter_map(|line| line.get("_traceparent").and_then(Value::as_str))
        .filter_map(|tp| parent_in(tp, &trace_id))
        .collect();
    let chat_ids: Vec<&str> = chats.iter().map(|c| c.span_id.as_str()).collect();
    assert_eq!(model_parents, chat_ids, "{tree}");
    let tool_parents: Vec<String> = mcp
        .http_requests()
        .iter()
        .filter_map(|line| line["traceparent"].as_str())
        .filter_map(|tp| parent_in(tp, &trace_id))
        .collect();
    assert_eq!(tool_parents, [tool.span_id.as_str()], "{tree}");

    // No secret in any span: not the caller's token, not the model's key.
    for span in collector.spans() {
        for (key, value) in &span.attributes {
            for secret in [alice.as_str(), API_KEY, "Bearer"] {
                assert!(!value.contains(secret), "{} {key}={value}", span.name);
            }
        }
    }

    // Log lines lead to the trace.
    let logs = server.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains(&format!("trace_id={trace_id} ")) && l.contains("span_id=")),
        "no log line names the trace"
    );
}

#[tokio::test]
async fn a_new_trace_captures_content_when_asked_and_json_log_lines_name_it() {
    let collector = Collector::start();
    let server = traced_server(
        &collector.endpoint(),
        None,
        &[
            ("CHATKIT__TELEMETRY__CAPTURE_CONTENT", "true"),
            ("OTEL_SERVICE_NAME", "chat-eu"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-collector-key=k-123"),
            ("CHATKIT__LOG__FORMAT", "json"),
        ],
    );
    let stream = create_traced(&server, &token("bob"), "hello traces", None).await;
    stream.assert_answered();
    Patience::within(Duration::from_secs(15))
        .until("the request's span", || {
            !named(&collector.spans(), "POST /chatkit").is_empty()
        })
        .await;
    let trace_id = one(&collector.spans(), "POST /chatkit").trace_id.clone();
    let spans = collector
        .trace(&trace_id, |s| !named(s, "chat gpt-4o-mini").is_empty())
        .await;
    let root = one(&spans, "POST /chatkit");
    assert!(root.parent_span_id.is_empty(), "a new trace");
    assert_eq!(
        collector.header("x-collector-key").as_deref(),
        Some("k-123")
    );
    assert_eq!(
        collector.header("content-type").as_deref(),
        Some("application/x-protobuf")
    );
    assert_eq!(
        root.resource.get("service.name").map(String::as_str),
        Some("chat-eu")
    );
    let chat = one(&spans, "chat gpt-4o-mini");
    let input = chat.attr("gen_ai.input.messages").expect("input captured");
    assert!(input.contains("hello traces"), "{input}");
    let output = chat
        .attr("gen_ai.output.messages")
        .expect("output captured");
    assert!(output.contains("assistant"), "{output}");
    // JSON log lines name their trace and span as two more fields.
    let logged = server.logs().lines().any(|line| {
        serde_json::from_str::<Value>(line)
            .is_ok_and(|l| l["trace_id"] == trace_id.as_str() && l["span_id"].is_string())
    });
    assert!(logged, "no JSON log line names the trace");
}

#[tokio::test]
async fn a_hand_over_from_another_instance_is_part_of_the_request_s_trace() {
    let collector = Collector::start();
    let endpoint = collector.endpoint();
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ("CHATKIT__TITLES__ENABLED", "false"),
    ];
    let schema = new_schema();
    let first_node = TestServer::start_node(&schema, "node-1", &env);
    let second_node = TestServer::start_node(&schema, "node-2", &env);
    let alice = token("alice");
    let first = create_traced(&first_node, &alice, "hello node 1", None).await;
    first.assert_answered();
    let thread_id = first.thread_id();

    // node-2 must ask node-1 for the thread before its turn.
    let trace_id = random_hex(16);
    let incoming = format!("00-{trace_id}-{}-01", random_hex(8));
    let body = add_message_request(&thread_id, "hello node 2");
    post_traced(&second_node, &alice, &body, Some(&incoming))
        .await
        .assert_answered();
    let spans = collector
        .trace(&trace_id, |spans| {
            !named(spans, "POST /chatkit").is_empty()
                && !named(spans, "invoke_agent chatkit").is_empty()
        })
        .await;
    let tree = render_tree(&spans);
    let http = one(&spans, "POST /chatkit");
    let handover = one(&spans, "chatkit.handover");
    assert!(descends(&spans, handover, http), "{tree}");
    assert_eq!(handover.attr("chatkit.thread.id"), Some(thread_id.as_str()));
    assert_eq!(
        handover.resource.get("service.name").map(String::as_str),
        Some("chatkit-rs")
    );
    let turn = one(&spans, "invoke_agent chatkit");
    assert!(
        handover.end_ns <= turn.start_ns,
        "the turn ran once the thread was here: {tree}"
    );
}

#[tokio::test]
async fn a_responses_api_call_records_the_tokens_the_provider_reported() {
    let collector = Collector::start();
    let server = traced_server(
        &collector.endpoint(),
        None,
        &[("CHATKIT__MODEL__API", "responses")],
    );
    let trace_id = random_hex(16);
    let incoming = format!("00-{trace_id}-{}-01", random_hex(8));
    create_traced(&server, &token("dave"), "hello tokens", Some(&incoming))
        .await
        .assert_answered();
    let spans = collector
        .trace(&trace_id, |s| !named(s, "chat gpt-4o-mini").is_empty())
        .await;
    let chat = one(&spans, "chat gpt-4o-mini");
    assert_eq!(chat.attr("chatkit.model.api"), Some("responses"));
    let tokens = |key| chat.attr(key).and_then(|v| v.parse::<u64>().ok());
    assert!(
        tokens("gen_ai.usage.input_tokens").is_some_and(|n| n > 0),
        "{chat:?}"
    );
    assert!(
        tokens("gen_ai.usage.output_tokens").is_some_and(|n| n > 0),
        "{chat:?}"
    );
    assert_eq!(chat.attr("gen_ai.response.finish_reasons"), Some("stop"));
}

/// Requests of a server whose collector hangs: each answered, none waiting for the export.
async fn turns_answer_promptly(server: &TestServer, turns: usize) {
    for i in 0..turns {
        let started = Instant::now();
        let stream = create_traced(server, &token("carol"), &format!("hello {i}"), None).await;
        stream.assert_answered();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "turn {i} took {took:?}");
    }
}

fn dropped(metrics: &str, reason: &str) -> f64 {
    let series = format!("chatkit_trace_spans_dropped_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_hanging_collector_never_slows_a_request_and_a_full_queue_drops_spans_counted() {
    let (endpoint, _hanging) = Collector::hanging();
    let server = traced_server(
        &endpoint,
        None,
        &[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "4"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "60000"),
        ],
    );
    turns_answer_promptly(&server, 5).await;
    let metrics = server.metrics().await;
    assert!(dropped(&metrics, "queue_full") > 0.0, "{metrics}");
}

#[tokio::test]
async fn a_dead_collector_never_fails_a_request_and_its_lost_spans_are_counted() {
    let server = traced_server(
        &dead_endpoint(),
        None,
        &[("OTEL_EXPORTER_OTLP_TIMEOUT", "200")],
    );
    turns_answer_promptly(&server, 3).await;
    Patience::within(Duration::from_secs(15))
        .until("spans the dead collector lost are counted", async || {
            dropped(&server.metrics().await, "export_failed") > 0.0
        })
        .await;
}
