//! Unit and property tests of the request parser (bounded, run with the unit tests).

mod cases {
    use super::super::*;

    #[test]
    fn parses_create() {
        let body = br#"{"type":"threads.create","params":{"input":{"content":[{"type":"input_text","text":"Hi"}],"attachments":[],"inference_options":{}}},"extra":1}"#;
        let req = ChatKitRequest::parse(body).unwrap();
        assert_eq!(req.op.name(), "threads.create");
        assert!(req.op.is_streaming());
    }

    #[test]
    fn classifies_errors() {
        assert!(matches!(
            ChatKitRequest::parse(b"nope"),
            Err(RequestError::InvalidJson(_))
        ));
        assert!(matches!(
            ChatKitRequest::parse(b"[1]"),
            Err(RequestError::InvalidEnvelope(_))
        ));
        assert!(matches!(
            ChatKitRequest::parse(br#"{"type":"threads.explode","params":{}}"#),
            Err(RequestError::UnknownOperation(_))
        ));
        assert!(matches!(
            ChatKitRequest::parse(br#"{"type":"threads.get_by_id","params":{}}"#),
            Err(RequestError::InvalidParams { .. })
        ));
        assert!(matches!(
            ChatKitRequest::parse(br#"{"type":"threads.list"}"#),
            Err(RequestError::InvalidEnvelope(_))
        ));
        // A content part without its discriminator is refused (protocol §1.1).
        assert!(matches!(
            ChatKitRequest::parse(br#"{"type":"threads.create","params":{"input":{"content":[{"text":"Hi"}],"attachments":[],"inference_options":{}}}}"#),
            Err(RequestError::InvalidParams { .. })
        ));
        assert!(matches!(
            ChatKitRequest::parse(br#"{"type":"threads.list","params":{"limit":-1}}"#),
            Err(RequestError::InvalidParams { .. })
        ));
    }

    #[test]
    fn client_tool_output_accepts_null_but_not_missing() {
        let ok = br#"{"type":"threads.add_client_tool_output","params":{"thread_id":"thr_1","result":null}}"#;
        assert!(ChatKitRequest::parse(ok).is_ok());
        let missing =
            br#"{"type":"threads.add_client_tool_output","params":{"thread_id":"thr_1"}}"#;
        assert!(ChatKitRequest::parse(missing).is_err());
    }

    #[test]
    fn long_unknown_op_names_are_cut_on_a_character_boundary() {
        // Byte 64 falls inside "é": the cut must move to a character boundary.
        let name = format!("{}é{}", "a".repeat(63), "z".repeat(100));
        let body = serde_json::json!({ "type": name, "params": {} }).to_string();
        match ChatKitRequest::parse(body.as_bytes()) {
            Err(RequestError::UnknownOperation(shown)) => {
                assert!(shown.len() <= MAX_ECHOED_BYTES);
                assert!(shown.starts_with(&"a".repeat(60)));
            }
            other => panic!("expected unknown_operation, got {other:?}"),
        }
    }

    #[test]
    fn serde_messages_quoting_client_text_are_bounded() {
        let kind = "𝄞".repeat(10_000);
        let body = serde_json::json!({ "type": "items.feedback", "params": {"thread_id": "thr_1", "item_ids": [], "kind": kind} }).to_string();
        match ChatKitRequest::parse(body.as_bytes()) {
            Err(RequestError::InvalidParams { message, .. }) => {
                assert!(message.len() <= MAX_MESSAGE_BYTES, "{}", message.len())
            }
            other => panic!("expected invalid_params, got {other:?}"),
        }
    }

    /// The message of an `invalid_params` refusal of `body`.
    fn refusal(body: &serde_json::Value) -> String {
        match ChatKitRequest::parse(body.to_string().as_bytes()) {
            Err(RequestError::InvalidParams { message, .. }) => message,
            other => panic!("expected invalid_params, got {other:?}"),
        }
    }

    #[test]
    fn nul_in_any_string_or_key_of_the_params_is_refused_naming_the_field() {
        use serde_json::json;
        let text = |t: &str| json!({ "content": [{ "type": "input_text", "text": t }], "attachments": [], "inference_options": {} });
        let cases = [
            (
                json!({ "type": "threads.update", "params": { "thread_id": "thr_1", "title": "a\u{0}b" } }),
                "`title`",
            ),
            (
                json!({ "type": "threads.create", "params": { "input": text("hi\u{0}") } }),
                "`input.content[0].text`",
            ),
            (
                json!({ "type": "threads.create", "params": { "input": { "content": [{ "type": "input_text", "text": "x" }, { "type": "input_tag", "id": "t", "text": "t", "data": { "k": ["ok", "n\u{0}"] } }], "attachments": [], "inference_options": {} } } }),
                "`input.content[1].data.k[1]`",
            ),
            (
                json!({ "type": "threads.create", "params": { "input": { "content": [{ "type": "input_tag", "id": "t", "text": "t", "data": { "a\u{0}": 1 } }], "attachments": [], "inference_options": {} } } }),
                "a key of `input.content[0].data`",
            ),
            (
                json!({ "type": "threads.custom_action", "params": { "thread_id": "thr_1", "item_id": "msg_1", "action": { "type": "x", "payload": { "p": "\u{0}" } } } }),
                "`action.payload.p`",
            ),
            (
                json!({ "type": "threads.add_client_tool_output", "params": { "thread_id": "thr_1", "result": "\u{0}" } }),
                "`result`",
            ),
            (
                json!({ "type": "attachments.create", "params": { "name": "a\u{0}.txt", "size": 1, "mime_type": "text/plain" } }),
                "`name`",
            ),
            (
                json!({ "type": "threads.list", "params": { "ignored\u{0}": true } }),
                "a key of `params`",
            ),
        ];
        for (body, field) in cases {
            let message = refusal(&body);
            assert!(
                message.contains(field) && message.contains("NUL"),
                "{body}: {message}"
            );
        }
        // Other control characters are text like any other; an escaped backslash before
        // `u0000` is not a NUL.
        let ok = json!({ "type": "threads.update", "params": { "thread_id": "thr_1", "title": "a\u{1}\u{7f}\\u0000" } });
        assert!(ChatKitRequest::parse(ok.to_string().as_bytes()).is_ok());
        // A key quoted back is bounded.
        let long = format!("{}\u{0}", "k".repeat(10_000));
        let body = json!({ "type": "threads.list", "params": { "x": { long: 1 } } });
        assert!(refusal(&body).len() <= MAX_MESSAGE_BYTES);
    }

    #[test]
    fn limit_zero_means_default() {
        assert_eq!(page_size(Some(0)).unwrap(), 20);
        assert_eq!(page_size(None).unwrap(), 20);
        assert!(page_size(Some(1001)).is_err());
    }
}

#[cfg(test)]
mod fuzz {
    //! Property tests of the request parser (bounded, run with the unit tests).
    use proptest::prelude::*;

    use super::super::*;

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            hostile_string().prop_map(serde_json::Value::from),
            prop::sample::select(OPERATION_NAMES.to_vec()).prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                prop::collection::btree_map(
                    prop::sample::select(vec![
                        "type",
                        "params",
                        "metadata",
                        "thread_id",
                        "input",
                        "content",
                        "text",
                        "limit",
                        "after",
                        "order",
                        "item_id",
                        "result",
                        "title",
                        "attachments",
                        "inference_options",
                        "kind",
                        "item_ids"
                    ]),
                    inner,
                    0..6
                )
                .prop_map(|m| serde_json::Value::Object(
                    m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                )),
            ]
        })
    }

    /// Text as attackers send it: combining marks, 4-byte characters, NUL, RTL marks, quotes,
    /// backslashes, any other code point, at every length class from empty to tens of
    /// kilobytes (lengths around the 64-byte cuts included).
    pub(crate) fn hostile_string() -> impl Strategy<Value = String> {
        let chars = |len: std::ops::Range<usize>| {
            prop::collection::vec(hostile_char(), len).prop_map(String::from_iter)
        };
        prop_oneof![
            4 => chars(0..16),
            3 => chars(56..72),
            2 => chars(200..2_000),
            // Long text, up to the default body limit, from a repeated hostile run.
            1 => (chars(1..64), 100usize..4_000).prop_map(|(run, times)| run.repeat(times)),
        ]
    }

    fn hostile_char() -> impl Strategy<Value = char> {
        prop_oneof![
            3 => prop::sample::select(vec![
                'a', 'Z', '0', ' ', '"', '\\', '\'', '\0', '\n', '\u{7f}', 'é', '\u{301}',
                '\u{36f}', '\u{200f}', '\u{202e}', '\u{feff}', '\u{fffd}', '中', '\u{10ffff}',
                '😀', '𝄞', '\u{e0001}',
            ]),
            1 => any::<char>(),
        ]
    }

    /// Every op of `tests/fixtures/requests.jsonl`, each string in it (discriminators
    /// included, now and then) replaced by hostile text.
    fn hostile_request() -> impl Strategy<Value = serde_json::Value> {
        let templates: Vec<serde_json::Value> =
            include_str!("../../../../tests/fixtures/requests.jsonl")
                .lines()
                .map(|line| serde_json::from_str(line).expect("fixture is JSON"))
                .collect();
        (
            prop::sample::select(templates),
            prop::collection::vec(hostile_string(), 12),
            prop::collection::vec(any::<bool>(), 12),
        )
            .prop_map(|(mut template, strings, replace)| {
                let mut strings = strings.into_iter().zip(replace).cycle();
                replace_strings(&mut template, &mut strings);
                template
            })
    }

    fn replace_strings(
        value: &mut serde_json::Value,
        strings: &mut impl Iterator<Item = (String, bool)>,
    ) {
        match value {
            serde_json::Value::String(text) => {
                if let Some((hostile, replace)) = strings.next() {
                    // Discriminators mostly stay, so most requests reach their op's params.
                    if replace || !(text.contains('.') || text.contains('_')) {
                        *text = hostile;
                    }
                }
            }
            serde_json::Value::Array(items) => {
                items.iter_mut().for_each(|v| replace_strings(v, strings))
            }
            serde_json::Value::Object(map) => {
                map.values_mut().for_each(|v| replace_strings(v, strings))
            }
            _ => {}
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn hostile_op_names_never_panic(name in hostile_string()) {
            let body = serde_json::json!({ "type": name, "params": {} }).to_string();
            let _ = ChatKitRequest::parse(body.as_bytes());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = ChatKitRequest::parse(&bytes);
        }

        #[test]
        fn arbitrary_json_never_panics_and_accepted_requests_round_trip(value in json_value()) {
            let text = value.to_string();
            if let Ok(request) = ChatKitRequest::parse(text.as_bytes()) {
                // Whatever we accept, we can serialize and parse again to the same request.
                let again = serde_json::to_vec(&request).unwrap();
                prop_assert_eq!(ChatKitRequest::parse(&again).unwrap(), request);
            }
        }
    }

    proptest! {
        // Fewer cases: each request carries up to a dozen strings, some of hundreds of KiB.
        #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn hostile_text_in_every_field_of_every_op_never_panics(request in hostile_request()) {
            let text = request.to_string();
            if let Ok(parsed) = ChatKitRequest::parse(text.as_bytes()) {
                let again = serde_json::to_vec(&parsed).unwrap();
                // Nothing accepted carries a NUL towards the database.
                let params = serde_json::value::RawValue::from_string(serde_json::to_string(&parsed.op).unwrap()).unwrap();
                prop_assert!(super::super::nul::nul_problem(&params).is_none());
                prop_assert_eq!(ChatKitRequest::parse(&again).unwrap(), parsed);
            }
        }
    }
}
