//! The provider's hosted tools over the Responses API (issue 25): configuration, image
//! generation as a `generated_image` item whose bytes this server keeps and serves, web and
//! file search as workflow tasks with their sources, cancel and failure, reload, and two
//! instances behind nginx.

use serde_json::{json, Value};

use crate::harness::*;

const HOSTED: &str = "[model]\napi = \"responses\"\n\
    [[hosted_tools]]\ntype = \"web_search\"\nsearch_context_size = \"low\"\n\
    [[hosted_tools]]\ntype = \"file_search\"\nvector_store_ids = [\"vs_tides\"]\n\
    [[hosted_tools]]\ntype = \"image_generation\"\npartial_images = 2\nsize = \"1024x1024\"\n\
    [[hosted_tools]]\ntype = \"code_interpreter\"\ncontainer = { type = \"auto\" }\n";

fn hosted_server(extra_config: &str) -> TestServer {
    TestServer::start_with_config(
        &format!("{HOSTED}{extra_config}"),
        &[("CHATKIT__TITLES__ENABLED", "false")],
    )
}

/// The newest Responses request whose input mentions `asked`.
fn request_for(asked: &str) -> Value {
    shared()
        .mock
        .last_request_where(&format!("a Responses request asking {asked:?}"), |r| {
            r.get("input").is_some() && r["input"].to_string().contains(asked)
        })
}

fn image_items(items: &[Value]) -> Vec<&Value> {
    items
        .iter()
        .filter(|i| i["type"] == "generated_image")
        .collect()
}

/// The counter of `chatkit_hosted_tool_calls_total` for `kind` and `outcome`.
fn hosted_calls(metrics: &str, kind: &str, outcome: &str) -> Option<u64> {
    let series =
        format!("chatkit_hosted_tool_calls_total{{outcome=\"{outcome}\",type=\"{kind}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn an_image_turn_streams_partials_then_a_stored_image_this_server_serves() {
    let server = hosted_server("");
    let alice = token("alice");
    let stream = create_thread(&server, &alice, "image a cat").await;
    stream.assert_answered();
    // The hosted tools follow ours, as configured.
    let request = request_for("image a cat");
    assert_eq!(
        request["tools"],
        json!([
            { "type": "web_search", "search_context_size": "low" },
            { "type": "file_search", "vector_store_ids": ["vs_tides"] },
            { "type": "image_generation", "partial_images": 2, "size": "1024x1024" },
            { "type": "code_interpreter", "container": { "type": "auto" } }
        ])
    );
    // The searches' sources and results are asked for, to show them in their steps.
    assert_eq!(
        request["include"],
        json!(["web_search_call.action.sources", "file_search_call.results"])
    );
    // protocol §8.14: added without an image, a partial image each with its progress, done.
    let kinds = stream.kinds();
    let at = kinds.iter().position(|k| k == "thread.item.added").unwrap();
    assert_eq!(
        kinds[at..at + 4],
        [
            "thread.item.added",
            "thread.item.updated:updated",
            "thread.item.updated:updated",
            "thread.item.done"
        ],
        "{kinds:?}"
    );
    let added = &stream.events[at]["item"];
    assert_eq!(added["type"], "generated_image");
    assert!(added.get("image").is_none(), "{added}");
    let partials: Vec<&Value> = stream.events[at + 1..at + 3]
        .iter()
        .map(|e| &e["update"])
        .collect();
    assert_eq!(partials[0]["type"], "generated_image.updated");
    assert_eq!(partials[0]["progress"], 0.0);
    assert_eq!(partials[1]["progress"], 0.5);
    assert!(partials[0]["image"]["url"]
        .as_str()
        .unwrap()
        .starts_with("data:image/png;base64,iVBOR"));
    let done = &stream.events[at + 3]["item"];
    assert_eq!(done["id"], added["id"]);
    let url = done["image"]["url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with(&server.url("/attachments/atc_")),
        "a URL of this server, never the bytes: {url}"
    );
    assert!(done["image"]["id"].as_str().unwrap().starts_with("ig_"));
    // The URL serves the final image, without any header (as an <img> tag asks).
    let image = server.get_raw(&url).await;
    assert_eq!(image.status, 200);
    assert_eq!(image.header("content-type"), "image/png");
    assert!(image.bytes.starts_with(b"\x89PNG\r\n\x1a\n"));

    // After a reload: listed, with a URL that works now.
    let thread_id = stream.thread_id();
    let items = server.items_asc(&alice, &thread_id).await;
    let listed = image_items(page_data(&items));
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], done["id"]);
    let reloaded = listed[0]["image"]["url"].as_str().unwrap();
    assert_eq!(server.get_raw(reloaded).await.bytes, image.bytes);

    // The next turn shows the model the image as the official bridge does, as a data URL.
    add_message(&server, &alice, &thread_id, "what did you draw")
        .await
        .assert_answered();
    let request = request_for("what did you draw");
    use base64::Engine as _;
    let data_url = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&image.bytes)
    );
    assert_eq!(
        request["input"][1],
        json!({ "role": "user", "content": [
            { "type": "input_text", "text": "The following image was generated by the agent." },
            { "type": "input_image", "image_url": data_url }
        ] })
    );
    let metrics = server.metrics().await;
    assert_eq!(
        hosted_calls(&metrics, "image_generation", "completed"),
        Some(1),
        "{metrics}"
    );
    assert_eq!(hosted_calls(&metrics, "web_search", "failed"), Some(0));
}

#[tokio::test]
async fn a_failed_image_is_withdrawn_and_the_reason_told_in_band() {
    let server = hosted_server("");
    let alice = token("alice");
    let stream = create_thread(&server, &alice, "image fail").await;
    stream.assert_answered();
    let added = stream
        .events
        .iter()
        .find(|e| e["type"] == "thread.item.added" && e["item"]["type"] == "generated_image")
        .expect("the image was announced");
    let removed = stream
        .events
        .iter()
        .position(|e| e["type"] == "thread.item.removed")
        .expect("then withdrawn");
    assert_eq!(stream.events[removed]["item_id"], added["item"]["id"]);
    let notice = &stream.events[removed + 1];
    assert_eq!(notice["type"], "notice");
    assert_eq!(
        notice["message"],
        "The image could not be generated: the request was blocked by moderation."
    );
    let items = server.items_asc(&alice, &stream.thread_id()).await;
    assert!(image_items(page_data(&items)).is_empty());
    let metrics = server.metrics().await;
    assert_eq!(
        hosted_calls(&metrics, "image_generation", "failed"),
        Some(1)
    );
}

#[tokio::test]
async fn cancelling_mid_image_stores_only_the_cancellation_marker() {
    let model = MockModel::start(&["--slow-delay-ms", "400"]);
    let base_url = model.base_url();
    // The server learns that the client left from a write that fails (the second after it
    // left): three partial images give it those writes before the final image.
    let server = TestServer::start_with_config(
        "[model]\napi = \"responses\"\n[[hosted_tools]]\ntype = \"image_generation\"\npartial_images = 3\n",
        &[
            ("CHATKIT__MODEL__BASE_URL", base_url.as_str()),
            ("CHATKIT__TITLES__ENABLED", "false"),
        ],
    );
    let alice = token("alice");
    let mut live = server
        .open_stream(
            &alice,
            &json!({ "type": "threads.create", "params": { "input": text_input("image slow") } }),
        )
        .await;
    let mut seen = 0;
    while !live
        .events
        .iter()
        .any(|e| e["update"]["type"] == "generated_image.updated")
    {
        seen = live.read_events(seen + 1).await;
        assert!(seen < 12, "a partial image arrives: {:?}", live.events);
    }
    let thread_id = live.events[0]["thread"]["id"].as_str().unwrap().to_string();
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
        "user_message,sdk_hidden_context",
        "a pending image is not stored"
    );
    let files = shared().postgres.psql(&format!(
        "SELECT count(*) FROM {}.attachments WHERE thread_id = '{thread_id}'",
        server.schema
    ));
    assert_eq!(files, "0", "no bytes kept for an image never finished");
    eventually("the cancelled call is counted", || async {
        let metrics = server.metrics().await;
        match hosted_calls(&metrics, "image_generation", "cancelled") {
            Some(1) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

#[tokio::test]
async fn web_and_file_searches_are_workflow_tasks_with_their_sources() {
    let server = hosted_server("");
    let alice = token("alice");
    let stream = create_thread(&server, &alice, "search tide times").await;
    stream.assert_answered();
    let workflow = stream
        .done_items()
        .into_iter()
        .find(|i| i["type"] == "workflow")
        .expect("a workflow");
    assert_eq!(
        workflow["workflow"]["tasks"],
        json!([{
            "status_indicator": "complete", "type": "web_search",
            "title": "Searched the web: tide times", "title_query": "tide times",
            "queries": ["tide times"],
            "sources": [{ "title": "https://example.com/source", "type": "url", "url": "https://example.com/source" }]
        }])
    );
    // Updated as it goes: in progress, searching, done.
    let titles: Vec<&str> = stream
        .events
        .iter()
        .filter_map(|e| {
            e["item"]["workflow"]["tasks"][0]["title"]
                .as_str()
                .or(e["update"]["task"]["title"].as_str())
        })
        .collect();
    assert_eq!(
        titles,
        [
            "Web search",
            "Searching the web",
            "Searched the web: tide times",
            "Searched the web: tide times"
        ]
    );
    let answer = stream.done_items().last().unwrap().clone();
    assert_eq!(
        answer["content"][0]["annotations"][0]["source"],
        json!({ "title": "Example source", "type": "url", "url": "https://example.com/source" })
    );

    let thread_id = stream.thread_id();
    let files = add_message(&server, &alice, &thread_id, "files tide tables").await;
    files.assert_answered();
    let workflow = files
        .done_items()
        .into_iter()
        .find(|i| i["type"] == "workflow")
        .expect("a workflow");
    assert_eq!(
        workflow["workflow"]["tasks"],
        json!([{
            "status_indicator": "complete", "type": "file", "title": "Searched files: tide tables",
            "sources": [{ "title": "tides.pdf", "type": "file", "filename": "tides.pdf" }]
        }])
    );
    let answer = files.done_items().last().unwrap().clone();
    assert_eq!(
        answer["content"][0]["annotations"][0],
        json!({ "type": "annotation", "source": { "title": "tides.pdf", "type": "file", "filename": "tides.pdf" }, "index": 13 })
    );

    let failed = add_message(&server, &alice, &thread_id, "search fail tides").await;
    failed.assert_answered();
    let workflow = failed
        .done_items()
        .into_iter()
        .find(|i| i["type"] == "workflow")
        .unwrap();
    assert_eq!(
        workflow["workflow"]["tasks"][0]["title"],
        "Web search failed"
    );
    let metrics = server.metrics().await;
    assert_eq!(hosted_calls(&metrics, "web_search", "completed"), Some(1));
    assert_eq!(hosted_calls(&metrics, "web_search", "failed"), Some(1));
    assert_eq!(hosted_calls(&metrics, "file_search", "completed"), Some(1));
}

#[tokio::test]
async fn a_search_joins_the_open_reasoning_workflow_between_thoughts() {
    let server = TestServer::start_with_config(
        "[model]\napi = \"responses\"\nreasoning_summary = \"auto\"\n[[hosted_tools]]\ntype = \"web_search\"\n",
        &[("CHATKIT__TITLES__ENABLED", "false")],
    );
    let alice = token("alice");
    let stream = create_thread(&server, &alice, "search tide times").await;
    stream.assert_answered();
    let workflows: Vec<Value> = stream
        .done_items()
        .into_iter()
        .filter(|i| i["type"] == "workflow")
        .collect();
    assert_eq!(workflows.len(), 1, "one workflow: {workflows:?}");
    assert_eq!(workflows[0]["workflow"]["type"], "reasoning");
    let tasks = workflows[0]["workflow"]["tasks"].as_array().unwrap();
    let shown: Vec<(&str, &str)> = tasks
        .iter()
        .map(|t| {
            let text = t["content"].as_str().or(t["title"].as_str()).unwrap();
            (t["type"].as_str().unwrap(), text)
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("thought", "Planning the search."),
            ("thought", "Choosing the query."),
            ("web_search", "Searched the web: tide times"),
            ("thought", "Reading the results.")
        ]
    );
    let items = server.items_asc(&alice, &stream.thread_id()).await;
    assert_eq!(
        page_data(&items)[1]["workflow"]["tasks"],
        workflows[0]["workflow"]["tasks"]
    );
}

#[tokio::test]
async fn code_interpreter_shows_its_code_and_serves_the_files_it_made() {
    let server = hosted_server("");
    let alice = token("alice");
    let stream = create_thread(&server, &alice, "code print(6 * 7)").await;
    stream.assert_answered();
    let workflow = stream
        .done_items()
        .into_iter()
        .find(|i| i["type"] == "workflow")
        .expect("a workflow");
    assert_eq!(
        workflow["workflow"]["tasks"],
        json!([{ "status_indicator": "complete", "type": "custom", "title": "Ran code", "content": "print(6 * 7)" }])
    );
    assert_eq!(workflow["workflow"]["expanded"], false, "shown collapsed");
    // The file it cites is fetched from the provider and served here, as a download.
    let answer = stream.done_items().last().unwrap().clone();
    let annotation = &answer["content"][0]["annotations"][0];
    assert_eq!(annotation["index"], 25);
    assert_eq!(annotation["source"]["title"], "result.csv");
    assert_eq!(annotation["source"]["type"], "url");
    let url = annotation["source"]["url"].as_str().unwrap();
    assert!(url.starts_with(&server.url("/attachments/atc_")), "{url}");
    let file = server.get_raw(url).await;
    assert_eq!(file.status, 200);
    assert_eq!(file.bytes, b"a,b\n1,2\n");
    assert!(
        file.header("content-disposition").starts_with("attachment"),
        "{}",
        file.header("content-disposition")
    );
    let metrics = server.metrics().await;
    assert_eq!(
        hosted_calls(&metrics, "code_interpreter", "completed"),
        Some(1)
    );
}

#[tokio::test]
async fn the_tool_menu_forces_a_hosted_tool_and_a_model_entry_keeps_some() {
    let server = hosted_server(
        "[[tool_choices]]\nid = \"draw\"\nlabel = \"Draw\"\nforce = \"image_generation\"\n\
         [[models]]\nid = \"searcher\"\nmodel = \"mock-search\"\nhosted_tools = [\"web_search\"]\n\
         [[models]]\nid = \"plain\"\nmodel = \"mock-plain\"\napi = \"chat_completions\"\n",
    );
    let alice = token("alice");
    let forced = server
        .stream(
            &alice,
            "threads.create",
            json!({ "input": {
                "content": [{ "type": "input_text", "text": "a lighthouse" }],
                "attachments": [],
                "inference_options": { "tool_choice": { "id": "draw" } }
            } }),
        )
        .await;
    forced.assert_answered();
    assert_eq!(
        request_for("a lighthouse")["tool_choice"],
        json!({ "type": "image_generation" })
    );
    assert_eq!(image_items(&forced.done_items()).len(), 1);
    let thread_id = forced.thread_id();
    for (model, text, tools) in [
        (
            "searcher",
            "only search",
            json!([{ "type": "web_search", "search_context_size": "low" }]),
        ),
        ("plain", "no hosted", Value::Null),
    ] {
        server
            .stream(
                &alice,
                "threads.add_user_message",
                json!({ "thread_id": thread_id, "input": {
                    "content": [{ "type": "input_text", "text": text }],
                    "attachments": [],
                    "inference_options": { "model": model }
                } }),
            )
            .await
            .assert_answered();
        let sent = shared()
            .mock
            .last_request_where(text, |r| r.to_string().contains(text));
        assert_eq!(sent["tools"], tools, "{model}");
    }
}

#[test]
fn hosted_tools_on_chat_completions_are_refused_at_start_up_in_one_line() {
    let file = temp_path("hosted", "toml");
    std::fs::write(&file, "[[hosted_tools]]\ntype = \"web_search\"\n").unwrap();
    let file = file.to_string_lossy().to_string();
    let (code, _, stderr) = crate::startup::chatkit(
        &[("CHATKIT__AUTH__JWT_SECRET", SECRET)],
        &["--config", &file, "check-config"],
    );
    assert_eq!(code, 2, "{stderr}");
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("hosted_tools"))
        .collect();
    assert_eq!(
        problems,
        ["configuration error: hosted_tools need model.api = \"responses\": the model is on Chat Completions, which has no hosted tools"],
        "{stderr}"
    );
}

#[tokio::test]
async fn an_image_made_on_one_instance_is_read_through_the_other_behind_nginx() {
    let schema = new_schema();
    let config = format!("{HOSTED}[server]\ntrusted_proxies = [\"127.0.0.1\"]\n");
    let nodes = [
        TestServer::start_node_with_config(&schema, "node-1", &config),
        TestServer::start_node_with_config(&schema, "node-2", &config),
    ];
    let nginx = crate::cluster_nginx::start_nginx(&nodes.iter().collect::<Vec<_>>()).await;
    let http = reqwest::Client::new();
    let alice = token("alice");
    let body =
        json!({ "type": "threads.create", "params": { "input": text_input("image a harbour") } });
    let stream = post_stream(&http, &nginx.url, &alice, &body)
        .await
        .expect("answered through nginx");
    let image = image_items(&stream.done_items())[0].clone();
    let url = image["image"]["url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with(&format!("{}/attachments/", nginx.url)),
        "the URL names the balancer: {url}"
    );
    // Round robin: consecutive reads land on both instances; each serves the same bytes.
    let mut bodies = Vec::new();
    for _ in 0..4 {
        let reply = http.get(&url).send().await.unwrap();
        assert_eq!(reply.status(), 200);
        bodies.push(reply.bytes().await.unwrap().to_vec());
    }
    for node in &nodes {
        let direct = url.replacen(&nginx.url, &format!("http://{}", node.addr), 1);
        let reply = http.get(&direct).send().await.unwrap();
        assert_eq!(reply.status(), 200, "{}", node.addr);
        bodies.push(reply.bytes().await.unwrap().to_vec());
    }
    assert!(bodies[0].starts_with(b"\x89PNG"));
    assert!(bodies.iter().all(|b| b == &bodies[0]));
    // A reload through the balancer lists it with a URL that works.
    let thread_id = stream.thread_id();
    let list =
        json!({ "type": "items.list", "params": { "thread_id": thread_id, "order": "asc" } });
    let reply = http
        .post(format!("{}/chatkit", nginx.url))
        .bearer_auth(&alice)
        .body(list.to_string())
        .send()
        .await
        .unwrap();
    let page: Value = reply.json().await.unwrap();
    let listed = image_items(page_data(&page))[0]["image"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let reply = http.get(&listed).send().await.unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.bytes().await.unwrap().to_vec(), bodies[0]);
}

#[test]
fn the_playground_shows_the_image_appearing_and_the_search_steps_also_after_reload() {
    // A pause between events, so the partial image is seen before the final one.
    let model = MockModel::start(&["--delay-ms", "250"]);
    let base_url = model.base_url();
    let server = TestServer::start_with_config(
        HOSTED,
        &[
            ("CHATKIT__SERVER__MODE", "development"),
            ("CHATKIT__MODEL__BASE_URL", &base_url),
            ("CHATKIT__TITLES__ENABLED", "false"),
        ],
    );
    crate::browser::run_playground_on(
        &server,
        "hosted",
        &[
            "hosted-1-partial",
            "hosted-2-final",
            "hosted-3-searches",
            "hosted-4-after-reload",
        ],
    );
}
