//! SOAP 1.1 envelopes for vim25: request encoding and response/fault decoding.

use crate::error::{Error, Fault};
use crate::value::{DataObject, MoRef, Value};
use crate::xml::{self, escape_into, Element};

pub const ENVELOPE_OPEN: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>"#;
pub const ENVELOPE_CLOSE: &str = "</soapenv:Body></soapenv:Envelope>";

/// Encodes a method call. Arguments are written in the order given, which must be the
/// WSDL order (vCenter checks it).
pub fn request(method: &str, this: &MoRef, args: &[(&str, Value)]) -> String {
    let mut out = String::with_capacity(512);
    out.push_str(ENVELOPE_OPEN);
    out.push('<');
    out.push_str(method);
    out.push_str(r#" xmlns="urn:vim25"><_this type=""#);
    escape_into(&mut out, &this.ty);
    out.push_str(r#"">"#);
    escape_into(&mut out, &this.value);
    out.push_str("</_this>");
    for (name, v) in args {
        v.encode(&mut out, name, false);
    }
    out.push_str("</");
    out.push_str(method);
    out.push('>');
    out.push_str(ENVELOPE_CLOSE);
    out
}

/// Decodes a response body: the `returnval` elements, or the SOAP fault.
pub fn response(body: &[u8]) -> Result<Vec<Element>, Error> {
    let root = xml::parse(body).map_err(|e| Error::Decode(e.to_string()))?;
    let body = root
        .child("Body")
        .ok_or_else(|| Error::Decode("SOAP envelope has no Body".into()))?;
    let first = body
        .children
        .first()
        .ok_or_else(|| Error::Decode("SOAP Body is empty".into()))?;
    if first.name == "Fault" {
        return Err(Error::Fault(fault_from_element(first)));
    }
    Ok(first
        .children
        .iter()
        .filter(|c| c.name == "returnval")
        .cloned()
        .collect())
}

/// Reads a `soapenv:Fault`: the vim25 fault type from `<detail>` (its `xsi:type`, or the
/// element name minus the `Fault` suffix), the message from `faultstring`.
pub fn fault_from_element(el: &Element) -> Fault {
    let msg = el.child_text("faultstring").unwrap_or_default().to_string();
    let detail = el.child("detail").and_then(|d| d.children.first());
    match detail {
        Some(d) => {
            let ty = d
                .xsi_type
                .clone()
                .unwrap_or_else(|| d.name.trim_end_matches("Fault").to_string());
            let detail = match Value::from_element(d) {
                Value::Obj(o) => o,
                _ => DataObject::new(ty.clone()),
            };
            Fault { ty, msg, detail }
        }
        None => Fault {
            ty: "SystemError".into(),
            msg,
            detail: DataObject::new("SystemError"),
        },
    }
}

/// Reads a `LocalizedMethodFault` (a task's `info.error`).
pub fn fault_from_localized(v: &Value) -> Fault {
    let obj = v.as_obj();
    let msg = obj
        .and_then(|o| o.text("localizedMessage"))
        .unwrap_or_default()
        .to_string();
    let detail = obj
        .and_then(|o| o.get("fault"))
        .and_then(Value::as_obj)
        .cloned()
        .unwrap_or_else(|| DataObject::new("SystemError"));
    Fault {
        ty: if detail.ty.is_empty() {
            "SystemError".into()
        } else {
            detail.ty.clone()
        },
        msg,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What pyvmomi puts on the wire for a fault response (captured from vcenter-sim).
    const INVALID_LOGIN: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>Cannot complete login due to an incorrect user name or password.</faultstring><detail><InvalidLoginFault xmlns="urn:vim25" xsi:type="InvalidLogin"></InvalidLoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#;

    /// A real vCenter 8 answer to RetrievePropertiesEx (shape as captured from vCenter).
    const RETRIEVE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/"
 xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns:xsd="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body>
<RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><token>1</token><objects><obj type="VirtualMachine">vm-42</obj><propSet><name>name</name><val xsi:type="xsd:string">web &amp; db</val></propSet><propSet><name>runtime.powerState</name><val xsi:type="VirtualMachinePowerState">poweredOn</val></propSet><propSet><name>config.hardware.device</name><val xsi:type="ArrayOfVirtualDevice"><VirtualDevice xsi:type="VirtualDisk"><key>2000</key><newerField>ignored</newerField></VirtualDevice></val></propSet></objects></returnval></RetrievePropertiesExResponse>
</soapenv:Body></soapenv:Envelope>"#;

    #[test]
    fn decodes_fault_type_and_message() {
        let Err(Error::Fault(f)) = response(INVALID_LOGIN.as_bytes()) else {
            panic!("expected a fault")
        };
        assert_eq!(f.ty, "InvalidLogin");
        assert!(f.msg.contains("incorrect user name"));
    }

    #[test]
    fn decodes_retrieve_result_with_unknown_fields() {
        let rv = response(RETRIEVE.as_bytes()).unwrap();
        assert_eq!(rv.len(), 1);
        let v = Value::from_element(&rv[0]);
        let o = v.as_obj().unwrap();
        assert_eq!(o.text("token"), Some("1"));
        let objects = o.get("objects").unwrap().as_obj().unwrap();
        assert_eq!(
            objects.get("obj").unwrap().as_moref().unwrap(),
            &MoRef::new("VirtualMachine", "vm-42")
        );
    }

    #[test]
    fn request_escapes_and_orders_arguments() {
        let body = request(
            "Login",
            &MoRef::new("SessionManager", "SessionManager"),
            &[
                ("userName", Value::string("a<b")),
                ("password", Value::string("p&q")),
            ],
        );
        assert!(body.contains(r#"<Login xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this><userName>a&lt;b</userName><password>p&amp;q</password></Login>"#));
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_panic() {
        for input in [
            "",
            "<a>",
            "<Envelope/>",
            "<Envelope><Body/></Envelope>",
            "\u{0}\u{1}",
        ] {
            assert!(
                matches!(response(input.as_bytes()), Err(Error::Decode(_))),
                "{input:?}"
            );
        }
    }
}
