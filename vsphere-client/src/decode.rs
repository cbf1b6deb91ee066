//! Streaming response decoding: XML events straight into vim25 values, with no
//! intermediate element tree. RetrievePropertiesEx results are turned into
//! `ObjectContent`s as each `<objects>` closes, so a 100K-object page never exists twice
//! in memory.

use crate::error::{Error, Result};
use crate::types::ObjectContent;
use crate::value::{DataObject, MoRef, Value};
use crate::xml::{normalise_xsi_type, MAX_DEPTH};
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

struct Frame {
    name: String,
    xsi: Option<String>,
    type_attr: Option<String>,
    text: String,
    fields: Vec<(String, Value)>,
}

fn local(name: &[u8]) -> String {
    let s = String::from_utf8_lossy(name);
    match s.rfind(':') {
        Some(i) => s[i + 1..].to_string(),
        None => s.into_owned(),
    }
}

fn frame(e: &BytesStart) -> Result<Frame> {
    let mut f = Frame {
        name: local(e.name().as_ref()),
        xsi: None,
        type_attr: None,
        text: String::new(),
        fields: Vec::new(),
    };
    for a in e.attributes() {
        let a = a.map_err(|e| Error::Decode(e.to_string()))?;
        let key = a.key.as_ref();
        let v = a
            .unescape_value()
            .map_err(|e| Error::Decode(e.to_string()))?;
        if key == b"type" {
            f.type_attr = Some(v.into_owned());
        } else if key.ends_with(b":type") {
            f.xsi = Some(normalise_xsi_type(&v));
        }
    }
    Ok(f)
}

/// The same rules as `Value::from_element`, applied to a finished frame.
fn finish(f: Frame) -> Value {
    let xsi = f.xsi.unwrap_or_default();
    if let Some(elem) = xsi.strip_prefix("ArrayOf") {
        let elem = crate::value::element_type_for_array(elem);
        return Value::array_of(elem, f.fields.into_iter().map(|(_, v)| v).collect());
    }
    if f.fields.is_empty() {
        if let Some(ty) = f.type_attr {
            return Value::MoRef(MoRef::new(ty, f.text.trim()));
        }
        let object = !xsi.is_empty() && !xsi.starts_with("xsd:") && f.text.trim().is_empty();
        if !object {
            return Value::Prim {
                ty: xsi,
                text: f.text,
            };
        }
    }
    Value::Obj(DataObject {
        ty: xsi,
        fields: f.fields,
    })
}

/// What to do with a completed element.
enum Sink<'a> {
    /// Keep everything: the `returnval` values.
    Values(&'a mut Vec<Value>),
    /// RetrieveResult: objects become ObjectContent immediately; the token is kept.
    Retrieve {
        objects: &'a mut Vec<ObjectContent>,
        token: &'a mut Option<String>,
    },
}

fn object_content(v: Value) -> Result<ObjectContent> {
    let Value::Obj(o) = v else {
        return Err(Error::Decode("ObjectContent is not an object".into()));
    };
    let mut obj = None;
    // Exact capacity: 100K objects with growth slack would cost megabytes.
    let mut props = Vec::with_capacity(o.fields.iter().filter(|(n, _)| n == "propSet").count());
    for (name, val) in o.fields {
        match (name.as_str(), val) {
            ("obj", Value::MoRef(m)) => obj = Some(m),
            ("propSet", Value::Obj(p)) => {
                let mut pname = None;
                let mut pval = None;
                for (n, v) in p.fields {
                    match n.as_str() {
                        "name" => pname = v.as_text().map(|t| t.trim().to_string()),
                        "val" => pval = Some(v),
                        _ => {}
                    }
                }
                if let (Some(n), Some(v)) = (pname, pval) {
                    props.push((n, v));
                }
            }
            _ => {}
        }
    }
    Ok(ObjectContent {
        obj: obj.ok_or_else(|| Error::Decode("ObjectContent.obj is missing".into()))?,
        props,
    })
}

/// Walks a SOAP response. Returns `Err(Error::Fault)` for a fault.
fn walk(body: &[u8], mut sink: Sink<'_>) -> Result<()> {
    let mut reader = Reader::from_reader(body);
    let mut stack: Vec<Frame> = Vec::new();
    // Depth of `returnval` elements: Envelope(1) > Body(2) > XResponse(3) > returnval(4).
    const RETURNVAL_DEPTH: usize = 4;
    let mut saw_body = false;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| Error::Decode(e.to_string()))?;
        match ev {
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(Error::Decode("XML nesting too deep".into()));
                }
                let f = frame(&e)?;
                if stack.len() == 1 && f.name == "Body" {
                    saw_body = true;
                }
                if stack.len() == 2 && f.name == "Fault" {
                    return Err(fault(body));
                }
                stack.push(f);
            }
            Event::Empty(e) => {
                let f = frame(&e)?;
                if stack.len() == 2 && f.name == "Fault" {
                    return Err(fault(body));
                }
                close(&mut stack, f, &mut sink, RETURNVAL_DEPTH)?;
            }
            Event::End(_) => {
                let f = stack
                    .pop()
                    .ok_or_else(|| Error::Decode("unbalanced end tag".into()))?;
                close(&mut stack, f, &mut sink, RETURNVAL_DEPTH)?;
            }
            Event::Text(t) => {
                let deep = stack.len() >= RETURNVAL_DEPTH;
                if let Some(top) = stack.last_mut().filter(|_| deep) {
                    {
                        top.text
                            .push_str(&t.unescape().map_err(|e| Error::Decode(e.to_string()))?);
                    }
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t.into_inner()));
                }
            }
            Event::Eof => {
                if !stack.is_empty() || !saw_body {
                    return Err(Error::Decode("truncated SOAP response".into()));
                }
                return Ok(());
            }
            _ => {}
        }
    }
}

fn close(stack: &mut [Frame], f: Frame, sink: &mut Sink<'_>, rv_depth: usize) -> Result<()> {
    let depth = stack.len() + 1;
    if depth < rv_depth {
        return Ok(()); // envelope, body, response wrapper
    }
    if depth == rv_depth {
        if f.name == "returnval" {
            if let Sink::Values(out) = sink {
                out.push(finish(f));
            }
        }
        return Ok(());
    }
    if let Sink::Retrieve { objects, token } = sink {
        if depth == rv_depth + 1 {
            match f.name.as_str() {
                "objects" => objects.push(object_content(finish(f))?),
                "token" => **token = Some(f.text.trim().to_string()),
                _ => {}
            }
            return Ok(());
        }
    }
    let name = f.name.clone();
    let v = finish(f);
    if let Some(parent) = stack.last_mut() {
        parent.fields.push((name, v));
    }
    Ok(())
}

fn fault(body: &[u8]) -> Error {
    // Faults are small: decode them with the element tree.
    match crate::soap::response(body) {
        Err(e) => e,
        Ok(_) => Error::Decode("malformed SOAP fault".into()),
    }
}

/// Every `returnval` of a response, decoded.
pub fn return_values(body: &[u8]) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    walk(body, Sink::Values(&mut out))?;
    Ok(out)
}

/// A RetrievePropertiesEx / ContinueRetrievePropertiesEx response: the objects and the
/// continuation token. An empty response (no `returnval`) is no objects and no token.
pub fn retrieve_result(body: &[u8]) -> Result<(Vec<ObjectContent>, Option<String>)> {
    // Sizing the result up front avoids doubling reallocations, which at 100K objects
    // would briefly hold two copies of the vector.
    let estimate = memchr::memmem::find_iter(body, b"<objects").count();
    let mut objects = Vec::with_capacity(estimate);
    let mut token = None;
    walk(
        body,
        Sink::Retrieve {
            objects: &mut objects,
            token: &mut token,
        },
    )?;
    Ok((objects, token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::{ENVELOPE_CLOSE, ENVELOPE_OPEN};

    fn wrap(inner: &str) -> String {
        format!("{ENVELOPE_OPEN}<XResponse xmlns=\"urn:vim25\">{inner}</XResponse>{ENVELOPE_CLOSE}")
    }

    #[test]
    fn streaming_matches_element_tree_decoding() {
        let body = wrap(
            r#"<returnval><token>t1</token><objects><obj type="VirtualMachine">vm-1</obj><propSet><name>config.hardware.device</name><val xsi:type="ArrayOfVirtualDevice"><VirtualDevice xsi:type="VirtualDisk"><key>2000</key><backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>[ds] a.vmdk</fileName></backing></VirtualDevice></val></propSet><propSet><name>name</name><val xsi:type="xsd:string">a &amp; b</val></propSet></objects></returnval>"#,
        );
        let tree: Vec<Value> = crate::soap::response(body.as_bytes())
            .unwrap()
            .iter()
            .map(Value::from_element)
            .collect();
        assert_eq!(return_values(body.as_bytes()).unwrap(), tree);
        let (objs, token) = retrieve_result(body.as_bytes()).unwrap();
        assert_eq!(token.as_deref(), Some("t1"));
        assert_eq!(
            objs[0],
            ObjectContent::from_value(&tree[0].as_obj().unwrap().get("objects").unwrap().clone())
                .unwrap()
        );
        assert_eq!(objs[0].text("name"), Some("a & b"));
    }

    #[test]
    fn faults_and_truncation_are_errors() {
        let f = format!("{ENVELOPE_OPEN}<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>no</faultstring><detail><NotAuthenticatedFault xmlns=\"urn:vim25\" xsi:type=\"NotAuthenticated\"/></detail></soapenv:Fault>{ENVELOPE_CLOSE}");
        assert_eq!(
            return_values(f.as_bytes()).unwrap_err().fault_type(),
            Some("NotAuthenticated")
        );
        let body = wrap("<returnval><objects>");
        assert!(matches!(
            retrieve_result(&body.as_bytes()[..body.len() - 40]),
            Err(Error::Decode(_))
        ));
        assert_eq!(
            retrieve_result(wrap("").as_bytes()).unwrap(),
            (vec![], None)
        );
    }
}
