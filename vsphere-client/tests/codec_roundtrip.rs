//! Property-based round trips of the vim25 codec: any value encoded in an anyType
//! position (as `returnval` of Fetch, or a DynamicProperty `val`) decodes back to itself,
//! through both the element-tree and the streaming decoder.

use proptest::prelude::*;
use vsphere_client::soap::{ENVELOPE_CLOSE, ENVELOPE_OPEN};
use vsphere_client::value::{DataObject, MoRef, Value};

fn ident() -> impl Strategy<Value = String> {
    "[a-z][a-zA-Z0-9]{0,12}"
}

fn type_name() -> impl Strategy<Value = String> {
    "[A-Z][a-zA-Z0-9]{0,16}".prop_filter("not an ArrayOf type", |s| !s.starts_with("ArrayOf"))
}

/// Text as clients send it: any printable characters including markup characters.
fn text() -> impl Strategy<Value = String> {
    "[ -~éü€<>&\"']{0,24}"
}

/// Values as they appear inside declared fields: primitives carry no xsi:type there.
fn nested() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        text().prop_map(|t| Value::Prim {
            ty: String::new(),
            text: t
        }),
        (type_name(), "[a-z0-9-]{1,10}").prop_map(|(t, v)| Value::MoRef(MoRef::new(t, v))),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        (type_name(), prop::collection::vec((ident(), inner), 0..6))
            .prop_map(|(ty, fields)| Value::Obj(DataObject { ty, fields }))
    })
}

/// Values in an anyType position: typed primitives, refs, objects, typed arrays.
fn top() -> impl Strategy<Value = Value> {
    prop_oneof![
        (
            prop_oneof![
                Just("xsd:string"),
                Just("xsd:int"),
                Just("xsd:long"),
                Just("xsd:boolean")
            ],
            text()
        )
            .prop_map(|(ty, t)| Value::Prim {
                ty: ty.to_string(),
                text: t
            }),
        // An untyped primitive only occurs inside declared fields, never at the top.
        nested().prop_filter("typed at the top", |v| !matches!(v, Value::Prim { .. })),
        prop::collection::vec(text(), 0..5)
            .prop_map(|v| Value::strings(v.iter().map(String::as_str))),
        prop::collection::vec((type_name(), "[a-z0-9-]{1,8}"), 0..5).prop_map(|v| Value::morefs(
            &v.into_iter()
                .map(|(t, x)| MoRef::new(t, x))
                .collect::<Vec<_>>()
        )),
        prop::collection::vec(
            nested().prop_filter("objects only", |v| matches!(v, Value::Obj(_))),
            0..4
        )
        .prop_map(|items| Value::array("VirtualDevice", items)),
    ]
}

fn envelope(v: &Value) -> String {
    let mut body = String::new();
    body.push_str(ENVELOPE_OPEN);
    body.push_str(r#"<FetchResponse xmlns="urn:vim25">"#);
    v.encode(&mut body, "returnval", true);
    body.push_str("</FetchResponse>");
    body.push_str(ENVELOPE_CLOSE);
    body
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn any_value_round_trips(v in top()) {
        let xml = envelope(&v);
        let streamed = vsphere_client::decode::return_values(xml.as_bytes()).unwrap();
        prop_assert_eq!(&streamed, &vec![v.clone()]);
        let tree = vsphere_client::soap::response(xml.as_bytes()).unwrap();
        prop_assert_eq!(Value::from_element(&tree[0]), v);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = vsphere_client::decode::return_values(&bytes);
        let _ = vsphere_client::decode::retrieve_result(&bytes);
        let _ = vsphere_client::soap::response(&bytes);
    }
}
