//! SOAP 1.1 envelopes: reading a request, writing a response or a vim25 fault.

use vsphere_client::value::{DataObject, MoRef, Value};
use vsphere_client::xml::{self, escape_into, Element};

pub use vsphere_client::soap::{ENVELOPE_CLOSE, ENVELOPE_OPEN};

/// A vim25 fault: its type name (`InvalidLogin`, `ManagedObjectNotFound`, ...), the message
/// for `faultstring`/`localizedMessage`, and the fault's own fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub ty: String,
    pub msg: String,
    pub fields: Vec<(String, Value)>,
    /// The caller sent something unparseable: `ClientFaultCode` rather than server.
    pub client: bool,
}

impl Fault {
    pub fn new(ty: &str, msg: impl Into<String>) -> Fault {
        Fault {
            ty: ty.into(),
            msg: msg.into(),
            fields: Vec::new(),
            client: false,
        }
    }
    pub fn with(mut self, name: &str, v: Value) -> Fault {
        self.fields.push((name.into(), v));
        self
    }
    pub fn invalid_argument(prop: &str) -> Fault {
        Fault::new(
            "InvalidArgument",
            format!("A specified parameter was not correct: {prop}"),
        )
        .with("invalidProperty", Value::string(prop))
    }
    pub fn not_found(obj: &MoRef) -> Fault {
        Fault::new(
            "ManagedObjectNotFound",
            format!(
                "The object 'vim.{}:{}' has already been deleted or has not been completely created",
                obj.ty, obj.value
            ),
        )
        .with("obj", Value::MoRef(obj.clone()))
    }
    pub fn not_authenticated() -> Fault {
        Fault::new("NotAuthenticated", "The session is not authenticated.")
            .with(
                "object",
                Value::MoRef(MoRef::new("SessionManager", "SessionManager")),
            )
            .with("privilegeId", Value::string("System.View"))
    }
    pub fn invalid_request(msg: impl Into<String>) -> Fault {
        let mut f = Fault::new("InvalidRequest", msg);
        f.client = true;
        f
    }
    pub fn invalid_state(msg: impl Into<String>) -> Fault {
        Fault::new("InvalidState", msg)
    }
    pub fn invalid_power_state(existing: &str, requested: Option<&str>) -> Fault {
        let mut f = Fault::new(
            "InvalidPowerState",
            "The attempted operation cannot be performed in the current state (".to_string()
                + match existing {
                    "poweredOn" => "Powered on",
                    "poweredOff" => "Powered off",
                    _ => "Suspended",
                }
                + ").",
        );
        if let Some(r) = requested {
            f = f.with(
                "requestedState",
                Value::enumv("VirtualMachinePowerState", r),
            );
        }
        f.with(
            "existingState",
            Value::enumv("VirtualMachinePowerState", existing),
        )
    }
    pub fn duplicate_name(name: &str, object: &MoRef) -> Fault {
        Fault::new(
            "DuplicateName",
            format!("The name '{name}' already exists."),
        )
        .with("name", Value::string(name))
        .with("object", Value::MoRef(object.clone()))
    }
    pub fn file_already_exists(file: &str) -> Fault {
        Fault::new(
            "FileAlreadyExists",
            format!(
                "Cannot complete the operation because the file or folder {file} already exists"
            ),
        )
        .with("file", Value::string(file))
    }
    pub fn file_not_found(file: &str) -> Fault {
        Fault::new("FileNotFound", format!("File {file} was not found"))
            .with("file", Value::string(file))
    }
    pub fn not_supported(msg: impl Into<String>) -> Fault {
        Fault::new("NotSupported", msg)
    }
    pub fn invalid_property(name: &str) -> Fault {
        Fault::new("InvalidProperty", format!("Invalid property: {name}"))
            .with("name", Value::string(name))
    }
    pub fn method_not_found(receiver: &MoRef, method: &str) -> Fault {
        Fault::new(
            "MethodNotFound",
            format!("Unable to resolve WSDL method name {method}: method is not implemented by vcenter-sim"),
        )
        .with("receiver", Value::MoRef(receiver.clone()))
        .with("method", Value::string(method))
    }

    /// The fault as a `MethodFault` data object (for `LocalizedMethodFault.fault`).
    pub fn to_object(&self) -> DataObject {
        DataObject {
            ty: self.ty.clone(),
            fields: self.fields.clone(),
        }
    }

    /// `LocalizedMethodFault`, as a task's `info.error` carries it.
    pub fn to_localized(&self) -> Value {
        Value::Obj(
            DataObject::new("LocalizedMethodFault")
                .with("fault", Value::Obj(self.to_object()))
                .with("localizedMessage", Value::string(&self.msg)),
        )
    }

    pub fn to_envelope(&self) -> String {
        let mut out = String::with_capacity(512);
        out.push_str(ENVELOPE_OPEN);
        out.push_str("<soapenv:Fault><faultcode>");
        out.push_str(if self.client {
            "ClientFaultCode"
        } else {
            "ServerFaultCode"
        });
        out.push_str("</faultcode><faultstring>");
        escape_into(&mut out, &self.msg);
        out.push_str("</faultstring><detail>");
        let tag = format!("{}Fault", self.ty);
        out.push('<');
        out.push_str(&tag);
        out.push_str(r#" xmlns="urn:vim25" xsi:type=""#);
        out.push_str(&self.ty);
        out.push_str(r#"">"#);
        for (n, v) in &self.fields {
            v.encode(&mut out, n, false);
        }
        out.push_str("</");
        out.push_str(&tag);
        out.push_str("></detail></soapenv:Fault>");
        out.push_str(ENVELOPE_CLOSE);
        out
    }
}

/// A parsed call: method name, `_this`, and the remaining argument elements.
#[derive(Debug)]
pub struct Call {
    pub method: String,
    pub this: MoRef,
    pub args: Element,
}

pub fn parse_call(body: &[u8]) -> Result<Call, Fault> {
    let root = xml::parse(body).map_err(|e| Fault::invalid_request(e.to_string()))?;
    if root.name != "Envelope" {
        return Err(Fault::invalid_request("request is not a SOAP envelope"));
    }
    let body = root
        .child("Body")
        .ok_or_else(|| Fault::invalid_request("SOAP envelope has no Body"))?;
    let call = body
        .children
        .first()
        .ok_or_else(|| Fault::invalid_request("SOAP Body is empty"))?;
    let this = call
        .child("_this")
        .and_then(MoRef::from_element)
        .ok_or_else(|| Fault::invalid_request(format!("{}: missing _this argument", call.name)))?;
    Ok(Call {
        method: call.name.clone(),
        this,
        args: call.clone(),
    })
}

/// What a method returns: nothing, one value, or an array (repeated `returnval`).
pub enum Reply {
    Void,
    One(Value),
    /// `Fetch` and other anyType results need `xsi:type` on `returnval`.
    Typed(Value),
    Many(Vec<Value>),
}

pub fn response_envelope(method: &str, reply: &Reply) -> String {
    let mut out = String::with_capacity(1024);
    out.push_str(ENVELOPE_OPEN);
    out.push('<');
    out.push_str(method);
    out.push_str(r#"Response xmlns="urn:vim25">"#);
    match reply {
        Reply::Void => {}
        Reply::One(v) => v.encode(&mut out, "returnval", false),
        Reply::Typed(v) => v.encode(&mut out, "returnval", true),
        Reply::Many(vs) => {
            for v in vs {
                v.encode(&mut out, "returnval", false);
            }
        }
    }
    out.push_str("</");
    out.push_str(method);
    out.push_str("Response>");
    out.push_str(ENVELOPE_CLOSE);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_envelope_names_type_in_detail() {
        let f = Fault::not_found(&MoRef::new("VirtualMachine", "vm-9"));
        let xml = f.to_envelope();
        assert!(xml.contains(r#"<ManagedObjectNotFoundFault xmlns="urn:vim25" xsi:type="ManagedObjectNotFound"><obj type="VirtualMachine">vm-9</obj>"#));
        assert!(xml.contains("<faultcode>ServerFaultCode</faultcode>"));
    }

    #[test]
    fn malformed_request_is_client_fault() {
        let err = parse_call(b"<Envelope><Body>").unwrap_err();
        assert_eq!(err.ty, "InvalidRequest");
        assert!(err.client);
        let err = parse_call(br#"<Envelope><Body><Login/></Body></Envelope>"#).unwrap_err();
        assert!(err.msg.contains("missing _this"));
    }
}
