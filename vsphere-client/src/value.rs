//! The dynamic vim25 data model: any data object, array, primitive or managed object
//! reference, with its wire type, plus its SOAP encoding.
//!
//! vim25 has thousands of data types; the simulator only interprets a few fields of most
//! of them but must echo the rest back exactly as the client sent them (a device spec it
//! does not understand must come back from `config.hardware.device` unchanged). A typed
//! tree with `xsi:type` names gives both: handlers read the fields they know, and
//! encoding is faithful for the rest.

use crate::xml::{escape_into, Element};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MoRef {
    #[serde(rename = "type")]
    pub ty: String,
    pub value: String,
}

impl MoRef {
    pub fn new(ty: impl Into<String>, value: impl Into<String>) -> Self {
        MoRef {
            ty: ty.into(),
            value: value.into(),
        }
    }

    /// Reads a reference element (`<_this type="VirtualMachine">vm-1</_this>`).
    pub fn from_element(el: &Element) -> Option<MoRef> {
        Some(MoRef::new(el.type_attr.clone()?, el.text.trim()))
    }
}

impl std::fmt::Display for MoRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.ty, self.value)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// A primitive or enum value. `ty` is `xsd:string`, `xsd:int`, ..., an enum type name,
    /// or empty when a client sent it without `xsi:type` in a declared field.
    Prim {
        ty: String,
        text: String,
    },
    MoRef(MoRef),
    Obj(DataObject),
    /// `elem` is the element type: `xsd:string`, `ManagedObjectReference`, `OptionValue`...
    Array {
        elem: String,
        items: Vec<Value>,
    },
    /// A value in an `xsd:anyType` position, so it must carry `xsi:type` on the wire.
    Any(Box<Value>),
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DataObject {
    pub ty: String,
    /// Fields in wire order. An array field appears once as `Value::Array`, or, when it
    /// came from a client, as repeated entries with the same name.
    pub fields: Vec<(String, Value)>,
}

impl DataObject {
    pub fn new(ty: impl Into<String>) -> Self {
        DataObject {
            ty: ty.into(),
            fields: Vec::new(),
        }
    }

    /// Builder: appends a field.
    pub fn with(mut self, name: &str, v: impl Into<Option<Value>>) -> Self {
        if let Some(v) = v.into() {
            self.fields.push((name.to_string(), v));
        }
        self
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Value> {
        self.fields
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Replaces a field's value, or appends it.
    pub fn set(&mut self, name: &str, v: Value) {
        match self.get_mut(name) {
            Some(slot) => *slot = v,
            None => self.fields.push((name.to_string(), v)),
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.fields.retain(|(n, _)| n != name);
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_text)
    }

    pub fn i64(&self, name: &str) -> Option<i64> {
        self.text(name).and_then(|t| t.trim().parse().ok())
    }
}

impl Value {
    pub fn string(s: impl Into<String>) -> Value {
        Value::Prim {
            ty: "xsd:string".into(),
            text: s.into(),
        }
    }
    pub fn int(i: i64) -> Value {
        Value::Prim {
            ty: "xsd:int".into(),
            text: i.to_string(),
        }
    }
    pub fn long(i: i64) -> Value {
        Value::Prim {
            ty: "xsd:long".into(),
            text: i.to_string(),
        }
    }
    pub fn short(i: i64) -> Value {
        Value::Prim {
            ty: "xsd:short".into(),
            text: i.to_string(),
        }
    }
    pub fn bool(b: bool) -> Value {
        Value::Prim {
            ty: "xsd:boolean".into(),
            text: b.to_string(),
        }
    }
    pub fn datetime(s: impl Into<String>) -> Value {
        Value::Prim {
            ty: "xsd:dateTime".into(),
            text: s.into(),
        }
    }
    pub fn enumv(ty: &str, s: &str) -> Value {
        Value::Prim {
            ty: ty.into(),
            text: s.into(),
        }
    }
    pub fn moref(m: &MoRef) -> Value {
        Value::MoRef(m.clone())
    }
    pub fn morefs<'a>(ms: impl IntoIterator<Item = &'a MoRef>) -> Value {
        Value::Array {
            elem: "ManagedObjectReference".into(),
            items: ms.into_iter().map(Value::moref).collect(),
        }
    }
    pub fn strings<'a>(ss: impl IntoIterator<Item = &'a str>) -> Value {
        Value::Array {
            elem: "xsd:string".into(),
            items: ss.into_iter().map(Value::string).collect(),
        }
    }
    pub fn array(elem: &str, items: Vec<Value>) -> Value {
        Value::Array {
            elem: elem.into(),
            items,
        }
    }

    /// An array whose untyped primitive items take the array's element type
    /// (`ArrayOfString` items are `<string>` elements without `xsi:type`).
    pub fn array_of(elem: String, mut items: Vec<Value>) -> Value {
        if elem.starts_with("xsd:") {
            for item in &mut items {
                if let Value::Prim { ty, .. } = item {
                    if ty.is_empty() {
                        *ty = elem.clone();
                    }
                }
            }
        }
        Value::Array { elem, items }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Prim { text, .. } => Some(text),
            Value::Any(v) => v.as_text(),
            _ => None,
        }
    }

    pub fn as_obj(&self) -> Option<&DataObject> {
        match self {
            Value::Obj(o) => Some(o),
            Value::Any(v) => v.as_obj(),
            _ => None,
        }
    }

    pub fn as_moref(&self) -> Option<&MoRef> {
        match self {
            Value::MoRef(m) => Some(m),
            Value::Any(v) => v.as_moref(),
            _ => None,
        }
    }

    /// The references a property holds: one, many, or none. Used by traversal.
    pub fn morefs_in(&self) -> Vec<&MoRef> {
        match self {
            Value::MoRef(m) => vec![m],
            Value::Array { items, .. } => items.iter().filter_map(Value::as_moref).collect(),
            Value::Any(v) => v.morefs_in(),
            _ => Vec::new(),
        }
    }

    /// The wire type name (`xsi:type`) of this value.
    pub fn type_name(&self) -> String {
        match self {
            Value::Prim { ty, .. } if ty.is_empty() => "xsd:string".into(),
            Value::Prim { ty, .. } => ty.clone(),
            Value::MoRef(_) => "ManagedObjectReference".into(),
            Value::Obj(o) => o.ty.clone(),
            Value::Array { elem, .. } => array_type_name(elem),
            Value::Any(v) => v.type_name(),
        }
    }

    /// Builds a value from a client-sent element. Without a schema we cannot know a
    /// primitive's declared type, which is fine: it is echoed back in the same declared
    /// position, where no `xsi:type` is needed.
    pub fn from_element(el: &Element) -> Value {
        let xsi = el.xsi_type.clone().unwrap_or_default();
        if let Some(elem) = xsi.strip_prefix("ArrayOf") {
            let elem = element_type_for_array(elem);
            let items = el.children.iter().map(Value::from_element).collect();
            return Value::array_of(elem, items);
        }
        if el.children.is_empty() {
            if let Some(ty) = &el.type_attr {
                return Value::MoRef(MoRef::new(ty.clone(), el.text.trim()));
            }
            let is_object_type = !xsi.is_empty()
                && !xsi.starts_with("xsd:")
                && el.text.trim().is_empty()
                && xsi != "ManagedObjectReference";
            if !is_object_type {
                return Value::Prim {
                    ty: xsi,
                    text: el.text.clone(),
                };
            }
        }
        let mut obj = DataObject::new(xsi);
        for c in &el.children {
            obj.fields.push((c.name.clone(), Value::from_element(c)));
        }
        Value::Obj(obj)
    }

    /// Encodes as element `name`. `typed` asks for `xsi:type` (anyType positions).
    pub fn encode(&self, out: &mut String, name: &str, typed: bool) {
        match self {
            Value::Any(v) => v.encode(out, name, true),
            Value::Prim { ty, text } => {
                out.push('<');
                out.push_str(name);
                if typed {
                    let ty = if ty.is_empty() { "xsd:string" } else { ty };
                    push_attr(out, "xsi:type", ty);
                }
                out.push('>');
                escape_into(out, text);
                close(out, name);
            }
            Value::MoRef(m) => {
                out.push('<');
                out.push_str(name);
                if typed {
                    push_attr(out, "xsi:type", "ManagedObjectReference");
                }
                push_attr(out, "type", &m.ty);
                out.push('>');
                escape_into(out, &m.value);
                close(out, name);
            }
            Value::Obj(o) => o.encode(out, name),
            Value::Array { elem, items } => {
                if typed {
                    out.push('<');
                    out.push_str(name);
                    push_attr(out, "xsi:type", &array_type_name(elem));
                    out.push('>');
                    let tag = elem.strip_prefix("xsd:").unwrap_or(elem);
                    for item in items {
                        // Subtypes inside an ArrayOfX still need their own xsi:type.
                        item.encode(out, tag, false);
                    }
                    close(out, name);
                } else {
                    for item in items {
                        item.encode(out, name, false);
                    }
                }
            }
        }
    }
}

impl DataObject {
    pub fn encode(&self, out: &mut String, name: &str) {
        out.push('<');
        out.push_str(name);
        if !self.ty.is_empty() {
            push_attr(out, "xsi:type", &self.ty);
        }
        out.push('>');
        self.encode_fields(out);
        close(out, name);
    }

    pub fn encode_fields(&self, out: &mut String) {
        for (n, v) in &self.fields {
            v.encode(out, n, false);
        }
    }
}

fn push_attr(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    escape_into(out, value);
    out.push('"');
}

fn close(out: &mut String, name: &str) {
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// `xsd:string` → `ArrayOfString`, `OptionValue` → `ArrayOfOptionValue`.
pub fn array_type_name(elem: &str) -> String {
    match elem.strip_prefix("xsd:") {
        Some(p) => {
            let mut c = p.chars();
            let first = c.next().map(|f| f.to_ascii_uppercase()).unwrap_or('X');
            format!("ArrayOf{first}{}", c.as_str())
        }
        None => format!("ArrayOf{elem}"),
    }
}

pub fn element_type_for_array(suffix: &str) -> String {
    let lower = {
        let mut c = suffix.chars();
        match c.next() {
            Some(f) => format!("{}{}", f.to_ascii_lowercase(), c.as_str()),
            None => String::new(),
        }
    };
    let xsd = crate::xml::normalise_xsi_type(&lower);
    if xsd.starts_with("xsd:") {
        xsd
    } else {
        suffix.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

    #[test]
    fn any_typed_arrays_and_refs_encode_as_vim25_does() {
        let mut out = String::new();
        Value::Any(Box::new(Value::morefs(&[MoRef::new(
            "VirtualMachine",
            "vm-1",
        )])))
        .encode(&mut out, "val", false);
        assert_eq!(
            out,
            r#"<val xsi:type="ArrayOfManagedObjectReference"><ManagedObjectReference type="VirtualMachine">vm-1</ManagedObjectReference></val>"#
        );
        let mut out = String::new();
        Value::Any(Box::new(Value::strings(["a<b"]))).encode(&mut out, "val", false);
        assert_eq!(
            out,
            r#"<val xsi:type="ArrayOfString"><string>a&lt;b</string></val>"#
        );
    }

    #[test]
    fn client_device_round_trips() {
        let xml = br#"<device xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="VirtualDisk"><key>-1</key><backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>[ds] a.vmdk</fileName><diskMode>persistent</diskMode></backing><connectable xsi:type="VirtualDeviceConnectInfo"/><capacityInKB>1024</capacityInKB></device>"#;
        let el = parse(xml).unwrap();
        let v = Value::from_element(&el);
        let obj = v.as_obj().unwrap();
        assert_eq!(obj.ty, "VirtualDisk");
        assert_eq!(obj.i64("capacityInKB"), Some(1024));
        assert_eq!(
            obj.get("connectable").unwrap().as_obj().unwrap().ty,
            "VirtualDeviceConnectInfo"
        );
        let mut out = String::new();
        v.encode(&mut out, "device", false);
        let again = Value::from_element(
            &parse(format!("<r xmlns:xsi=\"x\">{out}</r>").as_bytes())
                .unwrap()
                .children[0],
        );
        assert_eq!(again, v);
    }

    #[test]
    fn array_names() {
        assert_eq!(array_type_name("xsd:int"), "ArrayOfInt");
        assert_eq!(element_type_for_array("String"), "xsd:string");
        assert_eq!(element_type_for_array("VirtualDevice"), "VirtualDevice");
    }
}
