//! A small, namespace-tolerant XML element tree for SOAP bodies.
//!
//! vim25 messages are shallow and small enough that a tree is cheaper to reason about
//! than a streaming deserializer, and it lets the simulator accept whatever shape a
//! client sends (pyvmomi, govmomi and our own client differ in prefixes and in when
//! they write `xsi:type`). Element names are kept as local names; `xsi:type` values
//! are normalised so XML Schema primitives read `xsd:<name>` whatever prefix was used.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// Deepest element nesting accepted; vim25 bodies stay far below it, and the cap keeps
/// a hostile document from building an unbounded stack.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("XML nesting deeper than {MAX_DEPTH} elements")]
    TooDeep,
    #[error("XML document has no root element")]
    Empty,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Element {
    /// Local name, prefix stripped.
    pub name: String,
    /// Normalised `xsi:type`: `xsd:string`, `xsd:int`, ... for primitives, the bare vim25
    /// type name otherwise.
    pub xsi_type: Option<String>,
    /// The `type` attribute that managed object references carry.
    pub type_attr: Option<String>,
    pub text: String,
    pub children: Vec<Element>,
}

const XSD_PRIMITIVES: &[&str] = &[
    "string",
    "int",
    "long",
    "short",
    "byte",
    "boolean",
    "dateTime",
    "base64Binary",
    "float",
    "double",
    "anyType",
    "anyURI",
];

fn local(name: &[u8]) -> String {
    let s = String::from_utf8_lossy(name);
    match s.rfind(':') {
        Some(i) => s[i + 1..].to_string(),
        None => s.into_owned(),
    }
}

/// `xsd:string`, `xs:string` and `string` all mean the schema primitive; anything else is
/// a vim25 type whose prefix (if any) is dropped.
pub fn normalise_xsi_type(raw: &str) -> String {
    let local = raw.rsplit(':').next().unwrap_or(raw);
    if XSD_PRIMITIVES.contains(&local) {
        format!("xsd:{local}")
    } else {
        local.to_string()
    }
}

fn start_element(e: &BytesStart) -> Result<Element, XmlError> {
    let mut el = Element {
        name: local(e.name().as_ref()),
        ..Default::default()
    };
    for attr in e.attributes() {
        let attr = attr.map_err(|err| XmlError::Malformed(err.to_string()))?;
        let key = attr.key.as_ref();
        let value = attr
            .unescape_value()
            .map_err(|err| XmlError::Malformed(err.to_string()))?;
        if key == b"type" {
            el.type_attr = Some(value.into_owned());
        } else if local(key) == "type" && key.contains(&b':') {
            el.xsi_type = Some(normalise_xsi_type(&value));
        }
    }
    Ok(el)
}

/// Parses a whole document and returns its root element.
pub fn parse(input: &[u8]) -> Result<Element, XmlError> {
    let mut reader = Reader::from_reader(input);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Element> = Vec::new();
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| XmlError::Malformed(e.to_string()))?;
        match event {
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                stack.push(start_element(&e)?);
            }
            Event::Empty(e) => {
                let el = start_element(&e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Ok(el),
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| XmlError::Malformed("unbalanced end tag".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Ok(el),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    let s = t
                        .unescape()
                        .map_err(|e| XmlError::Malformed(e.to_string()))?;
                    top.text.push_str(&s);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t.into_inner()));
                }
            }
            Event::Eof => {
                return Err(if stack.is_empty() {
                    XmlError::Empty
                } else {
                    XmlError::Malformed("unexpected end of document".into())
                })
            }
            _ => {}
        }
        buf.clear();
    }
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Trimmed text of the named child, if present.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    pub fn child_bool(&self, name: &str) -> Option<bool> {
        self.child_text(name).map(|t| t == "true" || t == "1")
    }

    pub fn child_i64(&self, name: &str) -> Option<i64> {
        self.child_text(name).and_then(|t| t.parse().ok())
    }
}

/// Escapes text for element content and attribute values.
pub fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML parsers turn a raw CR into LF; the character reference survives.
            '\r' => out.push_str("&#13;"),
            _ => out.push(c),
        }
    }
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pyvmomi_style_body() {
        let doc = br#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">
<soapenv:Body><ReconfigVM_Task xmlns="urn:vim25"><_this type="VirtualMachine">vm-1</_this>
<spec><extraConfig><key>guestinfo.a</key><value xsi:type="xsd:string">x &amp; y</value></extraConfig></spec>
</ReconfigVM_Task></soapenv:Body></soapenv:Envelope>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "Envelope");
        let call = &root.child("Body").unwrap().children[0];
        assert_eq!(call.name, "ReconfigVM_Task");
        let this = call.child("_this").unwrap();
        assert_eq!(this.type_attr.as_deref(), Some("VirtualMachine"));
        assert_eq!(this.text, "vm-1");
        let value = call
            .child("spec")
            .unwrap()
            .child("extraConfig")
            .unwrap()
            .child("value")
            .unwrap();
        assert_eq!(value.xsi_type.as_deref(), Some("xsd:string"));
        assert_eq!(value.text, "x & y");
    }

    #[test]
    fn rejects_malformed_and_deep_documents() {
        assert!(parse(b"<a><b></a>").is_err());
        assert!(matches!(parse(b""), Err(XmlError::Empty)));
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert!(matches!(parse(deep.as_bytes()), Err(XmlError::TooDeep)));
    }

    #[test]
    fn normalises_primitive_prefixes() {
        assert_eq!(normalise_xsi_type("xs:int"), "xsd:int");
        assert_eq!(normalise_xsi_type("vim25:VirtualDisk"), "VirtualDisk");
    }
}
