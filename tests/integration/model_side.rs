//! The model's side of ChatKit (issue 16): visible reasoning, the model picker, the tool menu,
//! tags and quotes as the official bridge sends them.

use serde_json::{json, Value};

use crate::harness::*;

fn input(content: Value, inference_options: Value) -> Value {
    json!({ "content": content, "attachments": [], "inference_options": inference_options })
}

fn text(t: &str) -> Value {
    json!([{ "type": "input_text", "text": t }])
}

#[tokio::test]
async fn reasoning_streams_as_a_thought_workflow_stored_and_shown_after_reload() {
    let server = TestServer::start_with(&[("CHATKIT__TITLES__ENABLED", "false")]);
    let alice = token("alice");
    let stream = server
        .stream(
            &alice,
            "threads.create",
            json!({ "input": input(text("think about cats"), json!({})) }),
        )
        .await;
    stream.assert_answered();
    let kinds = stream.kinds();
    let workflow_added = kinds.iter().position(|k| k == "thread.item.added").unwrap();
    let added = &stream.events[workflow_added]["item"];
    assert_eq!(added["type"], "workflow");
    assert_eq!(
        added["workflow"],
        json!({ "type": "reasoning", "tasks": [], "expanded": false })
    );
    // The thoughts stream live, then the workflow closes before the answer starts.
    let first_task = stream
        .events
        .iter()
        .find(|e| e["update"]["type"] == "workflow.task.added")
        .expect("a thought was added");
    assert_eq!(first_task["update"]["task"]["type"], "thought");
    let done = stream.done_items();
    let workflow = done.iter().find(|i| i["type"] == "workflow").unwrap();
    assert_eq!(
        workflow["workflow"]["tasks"],
        json!([
            { "status_indicator": "none", "type": "thought", "content": "Thinking about about cats." },
            { "status_indicator": "none", "type": "thought", "content": "Checking the answer." }
        ])
    );
    assert_eq!(workflow["workflow"]["expanded"], false);
    assert!(workflow["workflow"]["summary"]["duration"].is_u64());
    let workflow_done = kinds
        .iter()
        .enumerate()
        .position(|(i, k)| {
            k == "thread.item.done" && stream.events[i]["item"]["type"] == "workflow"
        })
        .unwrap();
    let answer_added = kinds
        .iter()
        .enumerate()
        .position(|(i, k)| {
            k == "thread.item.added" && stream.events[i]["item"]["type"] == "assistant_message"
        })
        .unwrap();
    assert!(
        workflow_done < answer_added,
        "collapsed before the answer starts"
    );

    // Stored, shown after a reload, and never sent back to the model.
    let thread_id = stream.thread_id();
    let items = server.items_asc(&alice, &thread_id).await;
    let types: Vec<&str> = page_data(&items)
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["user_message", "workflow", "assistant_message"]);
    assert_eq!(&page_data(&items)[1], workflow);
    add_message(&server, &alice, &thread_id, "and dogs?")
        .await
        .assert_answered();
    let next = request_for("and dogs?");
    assert!(
        !next.to_string().contains("Checking the answer"),
        "reasoning is not sent back: {next}"
    );
}

#[tokio::test]
async fn cancelling_mid_reasoning_stores_only_the_cancellation_marker() {
    let model = MockModel::start(&["--delay-ms", "300"]);
    let server = TestServer::start_with_model(&model, &[("CHATKIT__TITLES__ENABLED", "false")]);
    cancel_mid_reasoning(&server, &model).await;
}

/// A client that leaves after the first thought: the pending workflow is not stored, the
/// cancellation marker is (protocol §8.8). `model` must be slow enough to leave mid-way.
async fn cancel_mid_reasoning(server: &TestServer, model: &MockModel) {
    let alice = token("alice");
    let thread_id = create_thread_with(server, &alice, model, "hi").await;
    let mut live = server
        .open_message_stream(&alice, &thread_id, "think slowly")
        .await;
    // user done, stream_options, workflow added, first thought added.
    assert_eq!(live.read_events(4).await, 4);
    assert_eq!(live.events[3]["update"]["type"], "workflow.task.added");
    drop(live);
    let items_sql = format!(
        "SELECT string_agg(kind, ',' ORDER BY created_at, seq) FROM {}.items WHERE thread_id = '{thread_id}'",
        server.schema
    );
    eventually("the cancellation is stored", || {
        let kinds = shared().postgres.psql(&items_sql);
        if kinds.ends_with("sdk_hidden_context") {
            Ok(())
        } else {
            Err(kinds)
        }
    })
    .await;
    assert_eq!(
        shared().postgres.psql(&items_sql),
        "user_message,assistant_message,user_message,sdk_hidden_context",
        "a pending workflow is not stored"
    );
}

/// A first exchange on `model` (whose answers take a while): the thread id.
async fn create_thread_with(
    server: &TestServer,
    token: &str,
    _model: &MockModel,
    text: &str,
) -> String {
    let stream = create_thread(server, token, text).await;
    stream.assert_answered();
    stream.thread_id()
}

const PICKER: &str = r#"
[[models]]
id = "fast"
label = "Fast"
model = "mock-fast"

[[models]]
id = "deep"
label = "Think harder"
model = "mock-deep"
reasoning_effort = "high"
"#;

#[tokio::test]
async fn the_picked_model_answers_and_unknown_ones_are_refused_before_anything_is_stored() {
    let server = TestServer::start_with_config(
        PICKER,
        &[
            ("CHATKIT__TITLES__ENABLED", "false"),
            ("CHATKIT__MODEL__REASONING_EFFORT", "medium"),
        ],
    );
    let alice = token("alice");
    let deep = server
        .stream(
            &alice,
            "threads.create",
            json!({ "input": input(text("use deep"), json!({ "model": "deep" })) }),
        )
        .await;
    deep.assert_answered();
    let request = request_for("use deep");
    assert_eq!(request["model"], "mock-deep");
    assert_eq!(request["reasoning_effort"], "high");
    assert_eq!(
        deep.done_items()[0]["inference_options"],
        json!({ "model": "deep" })
    );
    let thread_id = deep.thread_id();
    add_message(&server, &alice, &thread_id, "no choice")
        .await
        .assert_answered();
    let request = request_for("no choice");
    assert_ne!(request["model"], "mock-deep", "no id: the default model");
    assert_eq!(request["reasoning_effort"], "medium");
    // An entry without reasoning settings sends none, whatever the default's.
    server
        .stream(
            &alice,
            "threads.add_user_message",
            json!({ "thread_id": thread_id, "input": input(text("picker fast"), json!({ "model": "fast" })) }),
        )
        .await
        .assert_answered();
    let request = request_for("picker fast");
    assert_eq!(request["model"], "mock-fast");
    assert!(request.get("reasoning_effort").is_none(), "{request}");

    // The default model's own name is always accepted, picker or not.
    server
        .stream(
            &alice,
            "threads.add_user_message",
            json!({ "thread_id": thread_id, "input": input(text("by name"), json!({ "model": "gpt-4o-mini" })) }),
        )
        .await
        .assert_answered();
    assert_eq!(request_for("by name")["model"], "gpt-4o-mini");

    let before = page_data(&server.items_asc(&alice, &thread_id).await).len();
    let refused = server
        .post_op(
            &alice,
            "threads.add_user_message",
            json!({ "thread_id": thread_id, "input": input(text("x"), json!({ "model": "gpt-9" })) }),
        )
        .await;
    refused.assert_error(400, "invalid_params");
    assert_eq!(
        refused.json()["error"]["message"],
        "unknown model \"gpt-9\"; this server offers: fast, deep"
    );
    assert_eq!(
        page_data(&server.items_asc(&alice, &thread_id).await).len(),
        before
    );
    let refused = server
        .post_op(
            &alice,
            "threads.create",
            json!({ "input": input(text("x"), json!({ "model": "gpt-9" })) }),
        )
        .await;
    refused.assert_error(400, "invalid_params");
    assert_eq!(
        page_data(&server.list_threads(&alice, json!({})).await).len(),
        1
    );
}

fn tools_config(mcp: &McpServer) -> String {
    format!(
        r#"
[[mcp.servers]]
name = "tasks"
url = "{}"
forward_user_token = true

[[tool_choices]]
id = "add"
label = "Add a task"
force = "tasks__add_task"

[[tool_choices]]
id = "planner"
instructions = "You plan the week."
tools = ["tasks__list_tasks"]
"#,
        mcp.url()
    )
}

#[tokio::test]
async fn the_tool_menu_forces_a_tool_or_runs_a_profile() {
    let mcp = McpServer::start(&[]);
    let server = TestServer::start_with_config(
        &tools_config(&mcp),
        &[("CHATKIT__TITLES__ENABLED", "false")],
    );
    let alice = token("alice");
    let forced = server
        .stream(
            &alice,
            "threads.create",
            json!({ "input": input(text("add task water plants"), json!({ "tool_choice": { "id": "add" } })) }),
        )
        .await;
    forced.assert_answered();
    let first = shared().mock.last_request_where("forcing add_task", |r| {
        r["tool_choice"]["function"]["name"] == "add_task"
    });
    assert_eq!(
        first["tool_choice"],
        json!({ "type": "function", "function": { "name": "add_task" } })
    );
    assert_eq!(last_message(&first)["content"], "add task water plants");
    // The call after the tool's result is the model's own choice again.
    let follow_up = request_for("add task water plants");
    assert_eq!(last_message(&follow_up)["role"], "tool");
    assert!(follow_up.get("tool_choice").is_none());
    assert!(forced.answer_text().starts_with("Done: "));

    let planned = server
        .stream(
            &alice,
            "threads.create",
            json!({ "input": input(text("plan my week"), json!({ "tool_choice": { "id": "planner" } })) }),
        )
        .await;
    planned.assert_answered();
    let request = request_for("plan my week");
    assert_eq!(
        request["messages"][0],
        json!({ "role": "system", "content": "You plan the week." })
    );
    assert_eq!(tool_names(&request), ["list_tasks"]);
    assert!(request.get("tool_choice").is_none());

    server
        .post_op(
            &alice,
            "threads.create",
            json!({ "input": input(text("x"), json!({ "tool_choice": { "id": "web" } })) }),
        )
        .await
        .assert_error(400, "invalid_params");
}

/// Issue 24, defect 1: a composer that lists models and tools while the server configures
/// no picker and no menu: the choices are stored as sent, the default model answers, and a
/// tool choice naming exactly one offered tool forces it.
#[tokio::test]
async fn without_a_picker_or_menu_the_choices_are_stored_and_a_named_tool_is_forced() {
    let mcp = McpServer::start(&[]);
    let toml = format!(
        "[[mcp.servers]]\nname = \"tasks\"\nurl = \"{}\"\nforward_user_token = true\n",
        mcp.url()
    );
    let server = TestServer::start_with_config(&toml, &[("CHATKIT__TITLES__ENABLED", "false")]);
    let alice = token("alice");
    let options = json!({ "model": "gpt-4o-mini", "tool_choice": { "id": "add_task" } });
    let forced = server
        .stream(
            &alice,
            "threads.create",
            json!({ "input": input(text("add task repot the fern"), options.clone()) }),
        )
        .await;
    forced.assert_answered();
    assert_eq!(forced.done_items()[0]["inference_options"], options);
    let first = shared()
        .mock
        .last_request_where("forcing add_task by name", |r| {
            r["tool_choice"]["function"]["name"] == "add_task"
                && last_message(r)["content"] == "add task repot the fern"
        });
    assert_eq!(first["model"], "gpt-4o-mini");
    assert!(forced.answer_text().starts_with("Done: "));

    let unknown = json!({ "model": "mock-model", "tool_choice": { "id": "no_such_tool" } });
    let stored = server
        .stream(
            &alice,
            "threads.create",
            json!({ "input": input(text("just chat"), unknown.clone()) }),
        )
        .await;
    stored.assert_answered();
    assert_eq!(stored.done_items()[0]["inference_options"], unknown);
    let request = request_for("just chat");
    assert_eq!(request["model"], "gpt-4o-mini", "the default model answers");
    assert!(
        request.get("tool_choice").is_none(),
        "an unknown tool is ignored"
    );
}

#[tokio::test]
async fn tags_and_quotes_reach_the_model_as_the_official_bridge_sends_them() {
    let server = TestServer::start_with(&[
        ("CHATKIT__TITLES__ENABLED", "false"),
        ("CHATKIT__MODEL__INSTRUCTIONS", ""),
    ]);
    let alice = token("alice");
    let tag = |id: &str, label: &str| json!({ "type": "input_tag", "id": id, "text": label, "data": { "path": format!("/docs/{id}") }, "group": "Docs", "interactive": true });
    let first = server
        .stream(
            &alice,
            "threads.create",
            json!({ "input": {
                "content": [{ "type": "input_text", "text": "first" }],
                "attachments": [],
                "quoted_text": "an older quote",
                "inference_options": {}
            } }),
        )
        .await;
    first.assert_answered();
    let thread_id = first.thread_id();
    let second = server
        .stream(
            &alice,
            "threads.add_user_message",
            json!({ "thread_id": thread_id, "input": {
                "content": [
                    { "type": "input_text", "text": "compare " }, tag("d1", "Plan"),
                    { "type": "input_text", "text": " with " }, tag("d2", "Budget"), tag("d1", "Plan")
                ],
                "attachments": [],
                "quoted_text": "the third line",
                "inference_options": {}
            } }),
        )
        .await;
    second.assert_answered();
    let request = request_for("compare @Plan with @Budget@Plan");
    let messages = request["messages"].as_array().unwrap();
    let header = "# User-provided context for @-mentions\n- When referencing resolved entities, use their canonical names **without** '@'.\n- The '@' form appears only in user text and should not be echoed.";
    assert_eq!(
        messages
            .iter()
            .filter(|m| m["role"] != "assistant")
            .cloned()
            .collect::<Vec<_>>(),
        vec![
            // The older quote went with its own turn only.
            json!({ "role": "user", "content": "first" }),
            json!({ "role": "user", "content": "compare @Plan with @Budget@Plan" }),
            json!({ "role": "user", "content": "The user is referring to this in particular: \nthe third line" }),
            json!({ "role": "user", "content": [
                { "type": "text", "text": header },
                { "type": "text", "text": "@Plan: {\"id\":\"d1\",\"text\":\"Plan\",\"group\":\"Docs\",\"data\":{\"path\":\"/docs/d1\"}}" },
                { "type": "text", "text": "@Budget: {\"id\":\"d2\",\"text\":\"Budget\",\"group\":\"Docs\",\"data\":{\"path\":\"/docs/d2\"}}" }
            ] }),
        ]
    );
}

fn transcribe(audio: &[u8], mime: &str) -> Value {
    use base64::Engine as _;
    json!({
        "audio_base64": base64::engine::general_purpose::STANDARD.encode(audio),
        "mime_type": mime
    })
}

#[tokio::test]
async fn dictation_transcribes_through_the_configured_server_and_refuses_bad_audio() {
    let server = TestServer::start_with(&[
        ("CHATKIT__TRANSCRIPTION__MAX_BYTES", "2000000"),
        ("CHATKIT__TRANSCRIPTION__REQUESTS_PER_MINUTE", "6"),
    ]);
    let alice = token("alice");
    let audio = vec![0x1a_u8; 1_500_000];
    let reply = server
        .post_op(
            &alice,
            "input.transcribe",
            transcribe(&audio, "audio/webm;codecs=opus"),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.text,
        r#"{"text":"transcribed 1500000 bytes of audio/webm"}"#
    );
    let seen = shared()
        .mock
        .last_request_where("a transcription", |r| r.get("_transcription").is_some());
    assert_eq!(
        seen["_transcription"],
        json!({ "model": "whisper-1", "filename": "audio.webm", "content_type": "audio/webm", "bytes": 1_500_000 })
    );

    let garbage = server
        .post_op(
            &alice,
            "input.transcribe",
            transcribe(b"garbage bytes", "audio/ogg"),
        )
        .await;
    garbage.assert_error(400, "invalid_audio");
    assert!(
        garbage.text.contains("could not be decoded"),
        "{}",
        garbage.text
    );
    server
        .post_op(
            &alice,
            "input.transcribe",
            transcribe(&vec![1u8; 2_000_001], "audio/webm"),
        )
        .await
        .assert_error(413, "payload_too_large");
    server
        .post_op(&alice, "input.transcribe", transcribe(b"abc", "text/html"))
        .await
        .assert_error(415, "unsupported_media_type");
    server
        .post_op(
            &alice,
            "input.transcribe",
            json!({ "audio_base64": "%%%not base64", "mime_type": "audio/webm" }),
        )
        .await
        .assert_error(400, "invalid_params");
    server
        .post_op(&alice, "input.transcribe", transcribe(b"", "audio/webm"))
        .await
        .assert_error(400, "invalid_params");
    // Its own rate (6 a minute here): the seventh within the minute waits.
    let seventh = server
        .post_op(
            &alice,
            "input.transcribe",
            transcribe(b"hello", "audio/webm"),
        )
        .await;
    seventh.assert_error(429, "rate_limited");
    assert!(seventh.headers.contains_key("retry-after"));
    // Only dictation gets the larger body: other ops keep server.max_body_bytes.
    let big = json!({ "type": "threads.list", "params": {}, "metadata": { "pad": "x".repeat(1_200_000) } });
    server
        .post_raw(Some(&alice), big.to_string())
        .await
        .assert_error(413, "payload_too_large");
}

/// The newest Responses API request whose input mentions `asked`.
fn responses_request_for(asked: &str) -> Value {
    shared()
        .mock
        .last_request_where(&format!("a Responses request asking {asked:?}"), |r| {
            r.get("input").is_some() && r["input"].to_string().contains(asked)
        })
}

fn responses_server(extra_config: &str) -> TestServer {
    TestServer::start_with_config(
        &format!("[model]\napi = \"responses\"\nreasoning_summary = \"auto\"\n{extra_config}"),
        &[("CHATKIT__TITLES__ENABLED", "false")],
    )
}

#[tokio::test]
async fn the_responses_api_streams_text_reasoning_and_citations_statelessly() {
    let server = responses_server("");
    let alice = token("alice");
    // A plain turn: the same events as over Chat Completions.
    let plain = server
        .stream(
            &alice,
            "threads.create",
            json!({ "input": input(text("hello there"), json!({})) }),
        )
        .await;
    plain.assert_answered();
    assert!(plain.answer_text().starts_with("tok0 tok1"));
    let request = responses_request_for("hello there");
    assert_eq!(request["store"], false);
    assert_eq!(request["stream"], true);
    assert_eq!(request["instructions"], "You are a helpful assistant.");
    assert_eq!(
        request["input"],
        json!([{ "role": "user", "content": [{ "type": "input_text", "text": "hello there" }] }])
    );
    assert_eq!(request["reasoning"], json!({ "summary": "auto" }));
    // The usage the provider reports is counted.
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("chatkit_model_tokens_total{direction=\"output\"}"),
        "{metrics}"
    );
    assert_eq!(request["include"], json!(["reasoning.encrypted_content"]));

    // Reasoning summaries become thoughts.
    let thread_id = plain.thread_id();
    let reasoning = add_message(&server, &alice, &thread_id, "think about rain").await;
    reasoning.assert_answered();
    let workflow = reasoning
        .done_items()
        .into_iter()
        .find(|i| i["type"] == "workflow")
        .expect("a reasoning workflow");
    assert_eq!(
        workflow["workflow"]["tasks"],
        json!([
            { "status_indicator": "none", "type": "thought", "content": "Thinking about about rain." },
            { "status_indicator": "none", "type": "thought", "content": "Checking the answer." }
        ])
    );
    // The history goes back as input items (the earlier answer as output text).
    let request = responses_request_for("think about rain");
    assert_eq!(request["input"][1]["role"], "assistant");
    assert_eq!(request["input"][1]["content"][0]["type"], "output_text");

    // Citations become annotations, streamed and stored.
    let cited = add_message(&server, &alice, &thread_id, "cite your source").await;
    cited.assert_answered();
    let added = cited
        .events
        .iter()
        .find(|e| e["update"]["type"] == "assistant_message.content_part.annotation_added")
        .expect("an annotation was streamed");
    let annotation = json!({
        "type": "annotation",
        "source": { "title": "Example source", "type": "url", "url": "https://example.com/source" },
        "index": 23
    });
    assert_eq!(added["update"]["annotation"], annotation);
    assert_eq!(added["update"]["annotation_index"], 0);
    let answer = cited.done_items().last().unwrap().clone();
    assert_eq!(
        answer["content"][0]["text"],
        "According to the source, tok0."
    );
    assert_eq!(answer["content"][0]["annotations"], json!([annotation]));
    let items = server.items_asc(&alice, &thread_id).await;
    assert_eq!(
        page_data(&items).last().unwrap()["content"][0]["annotations"],
        json!([annotation])
    );
}

#[tokio::test]
async fn the_responses_api_runs_the_tool_loop_and_forced_tools() {
    let mcp = McpServer::start(&[]);
    let config = tools_config(&mcp);
    let server = responses_server(&format!("\n{config}"));
    let alice = token("alice");
    let added = server
        .stream(
            &alice,
            "threads.create",
            json!({ "input": input(text("add task call mom"), json!({ "tool_choice": { "id": "add" } })) }),
        )
        .await;
    added.assert_answered();
    assert!(
        added.answer_text().starts_with("Done: "),
        "{}",
        added.answer_text()
    );
    assert_eq!(mcp.tool_calls()[0]["args"]["title"], "call mom");
    let first = shared()
        .mock
        .last_request_where("a forced Responses call", |r| {
            r["tool_choice"] == json!({ "type": "function", "name": "add_task" })
        });
    assert!(first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["type"] == "function" && t.get("function").is_none()));
    let follow_up = shared()
        .mock
        .last_request_where("the call after the tool", |r| {
            r["input"]
                .as_array()
                .is_some_and(|i| i.iter().any(|x| x["type"] == "function_call_output"))
                && r["input"].to_string().contains("call mom")
        });
    let input = follow_up["input"].as_array().unwrap();
    let kinds: Vec<&str> = input
        .iter()
        .map(|i| i["type"].as_str().unwrap_or("message"))
        .collect();
    assert_eq!(kinds, ["message", "function_call", "function_call_output"]);
    assert!(follow_up.get("tool_choice").is_none());
}

#[tokio::test]
async fn the_responses_api_sees_attached_images_and_files_as_input_parts() {
    use base64::Engine as _;
    let server = responses_server("");
    let alice = token("alice");
    let png = base64::engine::general_purpose::STANDARD
        .decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
        .unwrap();
    let upload = |name: &'static str, mime: &'static str, bytes: Vec<u8>| {
        let server = &server;
        let alice = alice.clone();
        async move {
            let reply = server
                .post_form("/attachments", Some(&alice), &file_form(name, mime, &bytes))
                .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            reply.json()["id"].as_str().unwrap().to_string()
        }
    };
    let image = upload("a.png", "image/png", png.clone()).await;
    let pdf = upload("r.pdf", "application/pdf", b"%PDF-1.4\n%%EOF\n".to_vec()).await;
    let message = json!({ "content": text("what is this"), "attachments": [image, pdf], "inference_options": {} });
    server
        .stream(&alice, "threads.create", json!({ "input": message }))
        .await
        .assert_answered();
    let request = responses_request_for("what is this");
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    assert_eq!(
        request["input"][0]["content"],
        json!([
            { "type": "input_text", "text": "what is this" },
            { "type": "input_image", "image_url": format!("data:image/png;base64,{}", b64(&png)) },
            { "type": "input_file", "filename": "r.pdf", "file_data": format!("data:application/pdf;base64,{}", b64(b"%PDF-1.4\n%%EOF\n")) }
        ])
    );
}

#[tokio::test]
async fn the_responses_api_gets_tags_and_the_quote_as_input_items() {
    let server = responses_server("");
    let alice = token("alice");
    let stream = server
        .stream(
            &alice,
            "threads.create",
            json!({ "input": {
                "content": [
                    { "type": "input_text", "text": "summarize " },
                    { "type": "input_tag", "id": "d9", "text": "Roadmap", "data": { "v": 2 }, "interactive": false }
                ],
                "attachments": [],
                "quoted_text": "Q3 goals",
                "inference_options": {}
            } }),
        )
        .await;
    stream.assert_answered();
    let request = responses_request_for("summarize @Roadmap");
    let header = "# User-provided context for @-mentions\n- When referencing resolved entities, use their canonical names **without** '@'.\n- The '@' form appears only in user text and should not be echoed.";
    assert_eq!(
        request["input"],
        json!([
            { "role": "user", "content": [{ "type": "input_text", "text": "summarize @Roadmap" }] },
            { "role": "user", "content": [{ "type": "input_text", "text": "The user is referring to this in particular: \nQ3 goals" }] },
            { "role": "user", "content": [
                { "type": "input_text", "text": header },
                { "type": "input_text", "text": "@Roadmap: {\"id\":\"d9\",\"text\":\"Roadmap\",\"data\":{\"v\":2}}" }
            ] }
        ])
    );
}

#[tokio::test]
async fn cancelling_mid_reasoning_over_the_responses_api_stores_only_the_marker() {
    let model = MockModel::start(&["--delay-ms", "300"]);
    // The harness points every server at the shared mock through the environment, which
    // wins over files: this one gets the slow mock the same way.
    let base_url = model.base_url();
    let server = TestServer::start_with_config(
        "[model]\napi = \"responses\"\nreasoning_summary = \"auto\"\n",
        &[
            ("CHATKIT__MODEL__BASE_URL", base_url.as_str()),
            ("CHATKIT__TITLES__ENABLED", "false"),
        ],
    );
    cancel_mid_reasoning(&server, &model).await;
}
