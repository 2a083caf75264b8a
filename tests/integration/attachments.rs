//! Attachments (issue 14; protocol §3.14, §3.15, §7.3): two-phase and direct upload, the
//! checks on every path, messages carrying attachments, what the model receives, previews
//! and downloads, delete and clean-up, and URLs that hold across instances.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chatkit_actors::attachments::signing::Purpose;
use chatkit_actors::attachments::{PublicOrigin, UrlSigner};
use serde_json::{json, Value};

use crate::harness::*;

/// A real 1×1 PNG.
fn png() -> Vec<u8> {
    STANDARD
        .decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
        .unwrap()
}

const PDF: &[u8] = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n";
/// The signing key of the tests that sign URLs themselves (expired, downloads).
const KEY: &str = "test-signing-key-of-at-least-32-bytes!!";

fn create_params(name: &str, size: usize, mime: &str) -> Value {
    json!({ "name": name, "size": size, "mime_type": mime })
}

/// `attachments.create`, checked by the SDK.
async fn create(server: &TestServer, token: &str, name: &str, size: usize, mime: &str) -> Value {
    server
        .call(
            token,
            "attachments.create",
            create_params(name, size, mime),
            Kind::Attachment,
        )
        .await
}

fn upload_url(created: &Value) -> String {
    created["upload_descriptor"]["url"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Creates and uploads through the signed URL (no header); returns the attachment JSON.
async fn two_phase(
    server: &TestServer,
    token: &str,
    name: &str,
    mime: &str,
    bytes: &[u8],
) -> Value {
    let created = create(server, token, name, bytes.len(), mime).await;
    let reply = server
        .post_form(&upload_url(&created), None, &file_form(name, mime, bytes))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    sdk::check(Kind::Attachment, &reply.text);
    reply.json()
}

/// Direct upload with the bearer token (a 200's body checked by the SDK).
async fn direct(server: &TestServer, token: &str, name: &str, mime: &str, bytes: &[u8]) -> Reply {
    let reply = server
        .post_form("/attachments", Some(token), &file_form(name, mime, bytes))
        .await;
    if reply.status == 200 {
        sdk::check(Kind::Attachment, &reply.text);
    }
    reply
}

fn message_with(text: &str, attachment_ids: &[&str]) -> Value {
    json!({
        "content": [{ "type": "input_text", "text": text }],
        "attachments": attachment_ids,
        "inference_options": {}
    })
}

/// The newest model request whose last user message starts with `text`: its content parts.
fn parts_sent_for(text: &str) -> Vec<Value> {
    let request = shared()
        .mock
        .last_request_where(&format!("asking {text:?}"), |r| {
            r["messages"]
                .as_array()
                .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
                .and_then(|m| m["content"][0]["text"].as_str())
                .is_some_and(|t| t == text)
        });
    let messages = request["messages"].as_array().unwrap();
    let last_user = messages.iter().rev().find(|m| m["role"] == "user").unwrap();
    last_user["content"].as_array().unwrap().clone()
}

fn data_url(mime: &str, bytes: &[u8]) -> String {
    format!("data:{mime};base64,{}", STANDARD.encode(bytes))
}

#[tokio::test]
async fn two_phase_upload_then_a_message_the_model_sees_as_an_image() {
    let server = TestServer::start();
    let alice = token("alice");
    let image = png();
    let created = create(&server, &alice, "cat 🐈.png", image.len(), "image/png").await;
    let id = created["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("atc_"), "{id}");
    let keys: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "name",
            "mime_type",
            "upload_descriptor",
            "type",
            "preview_url"
        ],
        "the reference's key order"
    );
    assert_eq!(created["type"], "image");
    assert_eq!(created["name"], "cat 🐈.png");
    assert_eq!(created["upload_descriptor"]["method"], "POST");
    assert_eq!(created["upload_descriptor"]["headers"], json!({}));
    let upload = upload_url(&created);
    assert!(
        upload.starts_with(&server.url(&format!("/attachments/{id}/upload?"))),
        "{upload}"
    );

    // The bytes go to the signed URL with no header at all, once.
    let form = file_form("cat 🐈.png", "image/png", &image);
    let uploaded = server.post_form(&upload, None, &form).await;
    assert_eq!(uploaded.status, 200, "{}", uploaded.text);
    sdk::check(Kind::Attachment, &uploaded.text);
    assert!(uploaded.json().get("upload_descriptor").is_none());
    server
        .post_form(&upload, None, &form)
        .await
        .assert_error(409, "already_uploaded");

    // A message carries it: stamped with the thread, stored whole, shown to the model.
    let stream = server
        .stream(
            &alice,
            "threads.create",
            json!({ "input": message_with("describe it", &[&id]) }),
        )
        .await;
    stream.assert_answered();
    let thread_id = stream.thread_id();
    let user_message = &stream.done_items()[0];
    let attachments = user_message["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 1);
    let shown = &attachments[0];
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["thread_id"], thread_id.as_str());
    assert_eq!(shown["type"], "image");
    assert!(shown.get("metadata").is_none() && shown.get("upload_descriptor").is_none());
    assert_eq!(
        parts_sent_for("describe it"),
        vec![
            json!({ "type": "text", "text": "describe it" }),
            json!({ "type": "image_url", "image_url": { "url": data_url("image/png", &image) } }),
        ]
    );

    // Reads show it exactly so (with a preview URL valid now).
    let items = server.items_asc(&alice, &thread_id).await;
    let stored = &page_data(&items)[0];
    assert_eq!(stored["attachments"][0]["id"], id.as_str());
    assert_eq!(stored["attachments"][0]["thread_id"], thread_id.as_str());

    // The preview works in an <img> tag: no header, the right type, locked down.
    let preview = stored["attachments"][0]["preview_url"].as_str().unwrap();
    let fetched = server.get_raw(preview).await;
    assert_eq!(fetched.status, 200);
    assert!(fetched.complete);
    assert_eq!(fetched.bytes, image);
    assert_eq!(fetched.header("content-type"), "image/png");
    assert_eq!(fetched.header("content-disposition"), "inline");
    assert_eq!(fetched.header("x-content-type-options"), "nosniff");
    assert!(fetched
        .header("content-security-policy")
        .contains("default-src 'none'"));
    assert!(fetched
        .header("content-security-policy")
        .contains("sandbox"));
    assert!(fetched
        .header("cache-control")
        .starts_with("private, max-age="));

    // A follow-up sends the earlier image again, as the official bridge does.
    add_message(&server, &alice, &thread_id, "and now?")
        .await
        .assert_answered();
    let request = shared().mock.last_request_containing("and now?");
    let first_user = request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "user")
        .unwrap();
    assert_eq!(
        first_user["content"][1]["image_url"]["url"],
        data_url("image/png", &image)
    );
}

#[tokio::test]
async fn text_and_pdf_files_reach_the_model_as_text_and_file_parts() {
    let server = TestServer::start();
    let alice = token("alice");
    let notes = "# Plan\nship ✅ on Friday\n";
    let reply = direct(
        &server,
        &alice,
        "notes.md",
        "text/markdown",
        notes.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    sdk::check(Kind::Attachment, &reply.text);
    let md = reply.json();
    assert_eq!(md["type"], "file");
    assert!(md.get("preview_url").is_none() && md.get("upload_descriptor").is_none());
    // Browsers send no type for some files: it is guessed from the name.
    let reply = direct(
        &server,
        &alice,
        "report.pdf",
        "application/octet-stream",
        PDF,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let pdf = reply.json();
    assert_eq!(pdf["mime_type"], "application/pdf");

    let ids = [md["id"].as_str().unwrap(), pdf["id"].as_str().unwrap()];
    server
        .stream(
            &alice,
            "threads.create",
            json!({ "input": message_with("summarize", &ids) }),
        )
        .await
        .assert_answered();
    assert_eq!(
        parts_sent_for("summarize"),
        vec![
            json!({ "type": "text", "text": "summarize" }),
            json!({ "type": "text", "text": format!("Attached file notes.md (text/markdown):\n{notes}") }),
            json!({ "type": "file", "file": { "filename": "report.pdf", "file_data": data_url("application/pdf", PDF) } }),
        ]
    );
}

#[tokio::test]
async fn long_text_files_are_cut_for_the_model_and_the_cut_is_said() {
    let server = TestServer::start_with(&[("CHATKIT__ATTACHMENTS__MAX_TEXT_BYTES_TO_MODEL", "10")]);
    let alice = token("alice");
    let text = "0123456789abcdef";
    let file = direct(&server, &alice, "long.txt", "text/plain", text.as_bytes())
        .await
        .json();
    server
        .stream(
            &alice,
            "threads.create",
            json!({ "input": message_with("read", &[file["id"].as_str().unwrap()]) }),
        )
        .await
        .assert_answered();
    assert_eq!(
        parts_sent_for("read")[1],
        json!({ "type": "text", "text": "Attached file long.txt (text/plain):\n0123456789\n[Cut: the first 10 of 16 bytes are shown.]" })
    );
}

#[tokio::test]
async fn uploads_that_are_forged_foreign_mismatched_or_too_large_are_refused() {
    let server = TestServer::start_with(&[("CHATKIT__ATTACHMENTS__MAX_BYTES", "1000")]);
    let (alice, bob) = (token("alice"), token("bob"));
    let image = png();
    let created = create(&server, &alice, "a.png", image.len(), "image/png").await;
    let id = created["id"].as_str().unwrap();
    let url = upload_url(&created);
    let form = file_form("a.png", "image/png", &image);

    let tampered = format!("{}x", url);
    server
        .post_form(&tampered, None, &form)
        .await
        .assert_error(403, "invalid_signature");
    let other_id = url.replace(id, "atc_000000000000000000000000");
    server
        .post_form(&other_id, None, &form)
        .await
        .assert_error(403, "invalid_signature");
    let bare = server.url(&format!("/attachments/{id}/upload"));
    server
        .post_form(&bare, None, &form)
        .await
        .assert_error(401, "unauthorized");
    // Another user's token: exactly like an attachment that does not exist.
    server
        .post_form(&bare, Some(&bob), &form)
        .await
        .assert_error(404, "attachment_not_found");
    server
        .post_form(&url, Some(&bob), &form)
        .await
        .assert_error(404, "attachment_not_found");
    let missing = server.url("/attachments/atc_000000000000000000000000/upload");
    server
        .post_form(&missing, Some(&bob), &form)
        .await
        .assert_error(404, "attachment_not_found");

    // Content that is not what was declared, or not the declared size.
    let html = b"<html><script>alert(1)</script></html>";
    let liar = create(&server, &alice, "b.png", html.len(), "image/png").await;
    server
        .post_form(
            &upload_url(&liar),
            None,
            &file_form("b.png", "image/png", html),
        )
        .await
        .assert_error(415, "unsupported_media_type");
    let short = create(&server, &alice, "c.png", image.len() + 5, "image/png").await;
    server
        .post_form(&upload_url(&short), None, &form)
        .await
        .assert_error(400, "invalid_params");
    let reply = server
        .post_form(
            &upload_url(&short),
            None,
            &(form.0.clone(), b"not a form".to_vec()),
        )
        .await;
    reply.assert_error(400, "invalid_upload");

    // Types and sizes refused at creation and on direct upload.
    for (params, status, code) in [
        (
            create_params("x.svg", 10, "image/svg+xml"),
            415,
            "unsupported_media_type",
        ),
        (
            create_params("x", 10, "not a type"),
            415,
            "unsupported_media_type",
        ),
        (
            create_params("x.png", 1001, "image/png"),
            413,
            "payload_too_large",
        ),
        (
            create_params("x.png", 10, "image/png").with("size", json!(-1)),
            400,
            "invalid_params",
        ),
        (
            create_params("a\u{0}b.png", 10, "image/png"),
            400,
            "invalid_params",
        ),
        (
            create_params(&"n".repeat(256), 10, "text/plain"),
            400,
            "invalid_params",
        ),
    ] {
        server
            .post_op(&alice, "attachments.create", params)
            .await
            .assert_error(status, code);
    }
    direct(&server, &alice, "big.txt", "text/plain", &[b'a'; 1001])
        .await
        .assert_error(413, "payload_too_large");
    direct(
        &server,
        &alice,
        "page.txt",
        "text/plain",
        b"<!DOCTYPE html><p>hi",
    )
    .await
    .assert_error(415, "unsupported_media_type");
    server
        .post_form(
            "/attachments",
            None,
            &file_form("a.txt", "text/plain", b"hi"),
        )
        .await
        .assert_error(401, "unauthorized");
    // The token path works for the owner (no signature needed).
    let mine = create(&server, &alice, "d.png", image.len(), "image/png").await;
    let bare = server.url(&format!(
        "/attachments/{}/upload",
        mine["id"].as_str().unwrap()
    ));
    let reply = server.post_form(&bare, Some(&alice), &form).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    server
        .post_form(&bare, Some(&alice), &form)
        .await
        .assert_error(409, "already_uploaded");
    // Operators see the outcomes.
    let metrics = server.metrics().await;
    for outcome in [
        "stored",
        "refused_type",
        "refused_size",
        "refused_signature",
        "refused_repeat",
        "refused_not_found",
        "refused_input",
    ] {
        let line = format!("chatkit_attachment_uploads_total{{outcome=\"{outcome}\"}}");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    // One PNG of 70 bytes was stored.
    assert!(
        metrics.contains("chatkit_attachment_upload_bytes_total 70"),
        "{metrics}"
    );
}

/// `json!` objects with one key replaced.
trait With {
    fn with(self, key: &str, value: Value) -> Value;
}

impl With for Value {
    fn with(mut self, key: &str, value: Value) -> Value {
        self[key] = value;
        self
    }
}

#[tokio::test]
async fn expired_links_are_refused_and_files_download_instead_of_rendering() {
    let server = TestServer::start_with(&[
        ("CHATKIT__ATTACHMENTS__SIGNING_KEY", KEY),
        ("CHATKIT__ATTACHMENTS__UPLOAD_URL_TTL_SECS", "1"),
        ("CHATKIT__ATTACHMENTS__ALLOWED_TYPES", "image/png,text/*"),
    ]);
    let alice = token("alice");
    let image = png();
    let created = create(&server, &alice, "a.png", image.len(), "image/png").await;
    sleep_ms(2100).await;
    server
        .post_form(
            &upload_url(&created),
            None,
            &file_form("a.png", "image/png", &image),
        )
        .await
        .assert_error(403, "link_expired");

    // PDFs are left out of this server's types (for a model that takes no files).
    server
        .post_op(
            &alice,
            "attachments.create",
            create_params("a.pdf", 10, "application/pdf"),
        )
        .await
        .assert_error(415, "unsupported_media_type");

    let signer = UrlSigner::new(KEY.as_bytes());
    let origin = PublicOrigin::parse(&server.url("")).unwrap();
    let now = chrono_now();
    for (name, mime, bytes, served) in [
        (
            "notes.txt",
            "text/plain",
            "plain ✓".as_bytes(),
            "text/plain",
        ),
        (
            "page.html",
            "text/html",
            b"<html><script>alert(1)</script></html>".as_slice(),
            "application/octet-stream",
        ),
    ] {
        let file = direct(&server, &alice, name, mime, bytes).await.json();
        let id = file["id"].as_str().unwrap();
        let url = signer.url(&origin, Purpose::Content, id, now + 60);
        let fetched = server.get_raw(&url).await;
        assert_eq!(fetched.status, 200);
        assert_eq!(fetched.bytes, bytes);
        assert_eq!(fetched.header("content-type"), served, "{name}");
        assert!(
            fetched
                .header("content-disposition")
                .starts_with("attachment; filename=\""),
            "{name}"
        );
        assert_eq!(fetched.header("x-content-type-options"), "nosniff");
        // A signature for uploading is not one for reading, and old links stop working.
        let upload_sig = signer
            .url(&origin, Purpose::Upload, id, now + 60)
            .replace("/upload?", "/content?");
        server.get_raw(&upload_sig).await.status_is(403);
        let expired = signer.url(&origin, Purpose::Content, id, now - 1);
        let reply = server.get_raw(&expired).await;
        assert_eq!(reply.status, 403);
        assert!(String::from_utf8_lossy(&reply.bytes).contains("link_expired"));
    }
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl RawReply {
    fn status_is(&self, status: u16) {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.bytes)
        );
    }
}

#[tokio::test]
async fn messages_name_only_the_callers_uploaded_attachments() {
    let server = TestServer::start();
    let (alice, bob) = (token("alice"), token("bob"));
    let image = png();
    let bobs = two_phase(&server, &bob, "b.png", "image/png", &image).await;
    let pending = create(&server, &alice, "p.png", image.len(), "image/png").await;
    let unknown = "atc_0123456789abcdef01234567";
    let bobs_id = bobs["id"].as_str().unwrap();

    let refused = |id: &str| json!({ "input": message_with("hi", &[id]) });
    let reply = server
        .post_op(&alice, "threads.create", refused(unknown))
        .await;
    reply.assert_error(400, "invalid_params");
    assert_eq!(
        reply.json()["error"]["message"],
        format!("unknown attachment {unknown}")
    );
    // Bob's attachment looks exactly like one that does not exist.
    let reply = server
        .post_op(&alice, "threads.create", refused(bobs_id))
        .await;
    reply.assert_error(400, "invalid_params");
    assert_eq!(
        reply.json()["error"]["message"],
        format!("unknown attachment {bobs_id}")
    );
    let reply = server
        .post_op(
            &alice,
            "threads.create",
            refused(pending["id"].as_str().unwrap()),
        )
        .await;
    reply.assert_error(400, "invalid_params");
    assert!(
        reply.text.contains("has not been uploaded yet"),
        "{}",
        reply.text
    );
    server
        .post_op(&alice, "threads.create", refused("not an id"))
        .await
        .assert_error(400, "invalid_params");
    // Nothing was stored by any of them.
    let threads = server.list_threads(&alice, json!({})).await;
    assert!(page_data(&threads).is_empty());

    // Used in one thread, an attachment cannot be moved to another.
    let mine = two_phase(&server, &alice, "a.png", "image/png", &image).await;
    let id = mine["id"].as_str().unwrap();
    let first = server
        .stream(
            &alice,
            "threads.create",
            json!({ "input": message_with("one", &[id]) }),
        )
        .await;
    first.assert_answered();
    let reply = server.post_op(&alice, "threads.create", refused(id)).await;
    reply.assert_error(400, "invalid_params");
    assert!(reply.text.contains("belongs to another thread"));
    // …but the same thread may show it again.
    let again = server
        .stream(
            &alice,
            "threads.add_user_message",
            json!({ "thread_id": first.thread_id(), "input": message_with("two", &[id]) }),
        )
        .await;
    again.assert_answered();
    // Too many at once.
    let many: Vec<String> = (0..11).map(|i| format!("atc_{i:024x}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let reply = server
        .post_op(&alice, "threads.create", refused_many(&many))
        .await;
    reply.assert_error(400, "invalid_params");
    assert!(
        reply.text.contains("at most 10 attachments"),
        "{}",
        reply.text
    );
}

fn refused_many(ids: &[&str]) -> Value {
    json!({ "input": message_with("hi", ids) })
}

#[tokio::test]
async fn deleting_removes_bytes_and_metadata_and_threads_take_theirs_along() {
    let server = TestServer::start();
    let (alice, bob) = (token("alice"), token("bob"));
    let image = png();
    let loose = two_phase(&server, &alice, "a.png", "image/png", &image).await;
    let id = loose["id"].as_str().unwrap();
    let preview = loose["preview_url"].as_str().unwrap().to_string();
    assert_eq!(server.get_raw(&preview).await.status, 200);
    // Bob cannot delete it, and learns nothing from trying.
    let params = json!({ "attachment_id": id });
    let bobs_try = server
        .post_op(&bob, "attachments.delete", params.clone())
        .await;
    bobs_try.assert_error(404, "attachment_not_found");
    assert_eq!(server.get_raw(&preview).await.status, 200);
    let deleted = server
        .call(&alice, "attachments.delete", params.clone(), Kind::Empty)
        .await;
    assert_eq!(deleted, json!({}));
    server.get_raw(&preview).await.status_is(404);
    let missing = server.post_op(&alice, "attachments.delete", params).await;
    missing.assert_error(404, "attachment_not_found");
    assert_eq!(
        missing.text, bobs_try.text,
        "missing and foreign answer alike"
    );

    // A thread's attachments go with it.
    let used = two_phase(&server, &alice, "b.png", "image/png", &image).await;
    let stream = server
        .stream(
            &alice,
            "threads.create",
            json!({ "input": message_with("keep", &[used["id"].as_str().unwrap()]) }),
        )
        .await;
    stream.assert_answered();
    let preview = used["preview_url"].as_str().unwrap();
    assert_eq!(server.get_raw(preview).await.status, 200);
    server
        .call(
            &alice,
            "threads.delete",
            json!({ "thread_id": stream.thread_id() }),
            Kind::Empty,
        )
        .await;
    server.get_raw(preview).await.status_is(404);
}

#[tokio::test]
async fn uploads_no_message_used_are_cleaned_up_and_used_ones_are_kept() {
    let server = TestServer::start_with(&[("CHATKIT__ATTACHMENTS__UNUSED_TTL_SECS", "1")]);
    let alice = token("alice");
    let image = png();
    let unused = two_phase(&server, &alice, "a.png", "image/png", &image).await;
    let used = two_phase(&server, &alice, "b.png", "image/png", &image).await;
    server
        .stream(
            &alice,
            "threads.create",
            json!({ "input": message_with("keep", &[used["id"].as_str().unwrap()]) }),
        )
        .await
        .assert_answered();
    let unused_preview = unused["preview_url"].as_str().unwrap().to_string();
    eventually("the unused upload is deleted", async || {
        server.get_raw(&unused_preview).await.status == 404
    })
    .await;
    sleep_ms(1500).await;
    assert_eq!(
        server
            .get_raw(used["preview_url"].as_str().unwrap())
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn preview_urls_work_on_every_instance_and_reads_hand_out_fresh_ones() {
    let schema = new_schema();
    let short_urls = [("CHATKIT__ATTACHMENTS__URL_TTL_SECS", "1")];
    let a = TestServer::start_node(&schema, "node-a", &short_urls);
    let b = TestServer::start_node(&schema, "node-b", &short_urls);
    let alice = token("alice");
    let image = png();
    let uploaded = two_phase(&a, &alice, "a.png", "image/png", &image).await;
    let stream = b
        .stream(
            &alice,
            "threads.create",
            json!({ "input": message_with("where", &[uploaded["id"].as_str().unwrap()]) }),
        )
        .await;
    stream.assert_answered();
    let thread_id = stream.thread_id();
    let first_url = page_data(&a.items_asc(&alice, &thread_id).await)[0]["attachments"][0]
        ["preview_url"]
        .as_str()
        .unwrap()
        .to_string();
    // Signed by node-a's read, served by node-b (one key for the cluster, from the database).
    let on_b = first_url.replace(&a.addr, &b.addr);
    assert_eq!(b.get_raw(&on_b).await.bytes, image);
    // URLs live between one and two windows; a read after that gives a new, working one.
    sleep_ms(2100).await;
    a.get_raw(&first_url).await.status_is(403);
    let fresh = page_data(&b.items_asc(&alice, &thread_id).await)[0]["attachments"][0]
        ["preview_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(fresh, first_url);
    assert!(fresh.starts_with(&b.url("/attachments/")), "{fresh}");
    assert_eq!(b.get_raw(&fresh).await.bytes, image);
}

#[tokio::test]
async fn attachments_can_be_turned_off() {
    let server = TestServer::start_with(&[("CHATKIT__ATTACHMENTS__ENABLED", "false")]);
    let alice = token("alice");
    server
        .post_op(
            &alice,
            "attachments.create",
            create_params("a.png", 10, "image/png"),
        )
        .await
        .assert_error(400, "unsupported_operation");
    direct(&server, &alice, "a.txt", "text/plain", b"hi")
        .await
        .assert_error(400, "unsupported_operation");
    let reply = server
        .post_op(
            &alice,
            "threads.create",
            json!({ "input": message_with("hi", &["atc_1"]) }),
        )
        .await;
    reply.assert_error(400, "invalid_params");
    assert!(reply.text.contains("not enabled"));
}

/// A real 1×1 JPEG.
fn jpeg() -> Vec<u8> {
    STANDARD
        .decode("/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////////////////////////////////////////wgALCAABAAEBAREA/8QAFBABAAAAAAAAAAAAAAAAAAAAAP/aAAgBAQABPxA=")
        .unwrap()
}

#[tokio::test]
async fn a_message_with_two_images_sends_both_and_large_files_go_through_in_chunks() {
    let server = TestServer::start();
    let alice = token("alice");
    let (image, photo) = (png(), jpeg());
    let first = two_phase(&server, &alice, "a.png", "image/png", &image).await;
    let second = direct(&server, &alice, "b.jpg", "image/jpeg", &photo)
        .await
        .json();
    assert_eq!(second["type"], "image");
    let ids = [
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    ];
    server
        .stream(
            &alice,
            "threads.create",
            json!({ "input": message_with("compare", &ids) }),
        )
        .await
        .assert_answered();
    assert_eq!(
        parts_sent_for("compare"),
        vec![
            json!({ "type": "text", "text": "compare" }),
            json!({ "type": "image_url", "image_url": { "url": data_url("image/png", &image) } }),
            json!({ "type": "image_url", "image_url": { "url": data_url("image/jpeg", &photo) } }),
        ]
    );

    // 3.2 MiB: stored in seven chunks, read back whole and in order, with its length.
    let mut big = image.clone();
    big.extend((0..3_300_000u32).map(|i| (i % 251) as u8));
    let stored = two_phase(&server, &alice, "big.png", "image/png", &big).await;
    let fetched = server
        .get_raw(stored["preview_url"].as_str().unwrap())
        .await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.header("content-length"), big.len().to_string());
    assert!(fetched.bytes == big, "the same bytes, in order");
    server
        .stream(
            &alice,
            "threads.create",
            json!({ "input": message_with("big one", &[stored["id"].as_str().unwrap()]) }),
        )
        .await
        .assert_answered();
    assert_eq!(
        parts_sent_for("big one")[1]["image_url"]["url"],
        data_url("image/png", &big)
    );
}

#[tokio::test]
async fn each_user_has_a_quota_that_deleting_frees() {
    let server = TestServer::start_with(&[("CHATKIT__ATTACHMENTS__MAX_BYTES_PER_USER", "1000")]);
    let (alice, bob) = (token("alice"), token("bob"));
    let first = create(&server, &alice, "a.txt", 600, "text/plain").await;
    let reply = server
        .post_op(
            &alice,
            "attachments.create",
            create_params("b.txt", 500, "text/plain"),
        )
        .await;
    reply.assert_error(413, "quota_exceeded");
    direct(&server, &alice, "c.txt", "text/plain", &[b'c'; 500])
        .await
        .assert_error(413, "quota_exceeded");
    create(&server, &bob, "b.txt", 500, "text/plain").await;
    server
        .call(
            &alice,
            "attachments.delete",
            json!({ "attachment_id": first["id"] }),
            Kind::Empty,
        )
        .await;
    let reply = direct(&server, &alice, "c.txt", "text/plain", &[b'c'; 500]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

/// A streaming upload body the test feeds by hand.
fn held_body(
    form: &(String, Vec<u8>),
    first: usize,
) -> (
    reqwest::Body,
    futures::channel::mpsc::UnboundedSender<Result<Vec<u8>, std::io::Error>>,
) {
    let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Vec<u8>, std::io::Error>>();
    tx.unbounded_send(Ok(form.1[..first].to_vec())).unwrap();
    (reqwest::Body::wrap_stream(rx), tx)
}

#[tokio::test]
async fn one_upload_at_a_time_and_an_abandoned_one_leaves_nothing_behind() {
    let server = TestServer::start();
    let alice = token("alice");
    let mut bytes = png();
    bytes.extend(std::iter::repeat_n(7u8, 700_000));
    let created = create(&server, &alice, "a.png", bytes.len(), "image/png").await;
    let url = upload_url(&created);
    let form = file_form("a.png", "image/png", &bytes);
    let http = reqwest::Client::new();

    // An upload that is slow to send everything: a second one meanwhile is refused.
    let (body, feed) = held_body(&form, 600_000);
    let slow = tokio::spawn(
        http.post(url.clone())
            .header("content-type", form.0.clone())
            .body(body)
            .send(),
    );
    let claimed = format!(
        "SELECT upload_token IS NOT NULL FROM {}.attachments WHERE id = '{}'",
        server.schema,
        created["id"].as_str().unwrap()
    );
    eventually("the first upload is being received", || {
        shared().postgres.psql(&claimed) == "t"
    })
    .await;
    server
        .post_form(&url, None, &form)
        .await
        .assert_error(409, "upload_in_progress");
    feed.unbounded_send(Ok(form.1[600_000..].to_vec())).unwrap();
    drop(feed);
    let done = slow.await.unwrap().unwrap();
    assert_eq!(done.status(), 200);
    server
        .post_form(&url, None, &form)
        .await
        .assert_error(409, "already_uploaded");

    // A client that leaves mid-upload: the attachment can be uploaded again at once.
    let again = create(&server, &alice, "b.png", bytes.len(), "image/png").await;
    let url = upload_url(&again);
    let (body, feed) = held_body(&form, 600_000);
    let left = tokio::spawn(
        http.post(url.clone())
            .header("content-type", form.0.clone())
            .body(body)
            .send(),
    );
    sleep_ms(300).await;
    feed.unbounded_send(Err(std::io::Error::other("gone")))
        .unwrap();
    let _ = left.await;
    eventually("the abandoned upload is released", async || {
        server.post_form(&url, None, &form).await.status == 200
    })
    .await;
    let stored = shared().postgres.psql(&format!(
        "SELECT count(*), sum(octet_length(data)) FROM {}.attachment_chunks WHERE attachment_id = '{}'",
        server.schema,
        again["id"].as_str().unwrap()
    ));
    assert_eq!(
        stored,
        format!("2|{}", bytes.len()),
        "one copy of the bytes, in two chunks"
    );
}

#[tokio::test]
async fn an_upload_acknowledged_before_a_crash_is_there_after_it() {
    let mut server = TestServer::start();
    let alice = token("alice");
    let image = png();
    let uploaded = two_phase(&server, &alice, "a.png", "image/png", &image).await;
    let old_addr = server.addr.clone();
    server.restart(); // SIGKILL, then a new process on the same database
    let id = uploaded["id"].as_str().unwrap();
    let stream = server
        .stream(
            &alice,
            "threads.create",
            json!({ "input": message_with("after the crash", &[id]) }),
        )
        .await;
    stream.assert_answered();
    assert_eq!(
        parts_sent_for("after the crash")[1]["image_url"]["url"],
        data_url("image/png", &image)
    );
    // The URL handed out before the crash still works (same key, same bytes).
    let preview = uploaded["preview_url"]
        .as_str()
        .unwrap()
        .replace(&old_addr, &server.addr);
    assert_eq!(server.get_raw(&preview).await.bytes, image);
}
