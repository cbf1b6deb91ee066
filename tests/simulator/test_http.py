"""The HTTP side: datastore file transfer under /folder, raw SOAP requests and faults,
the version documents, and the REST session endpoint."""

import base64
import hashlib
import re
import ssl
import urllib.error
import urllib.request

from pyVmomi import vim

import helpers
from helpers import DS


def put(sim, si, path, data, **kw):
    return helpers.http("PUT", helpers.folder_url(sim, path, **kw), si=si, data=data)


def get(sim, si, path, headers=None, **kw):
    return helpers.http("GET", helpers.folder_url(sim, path, **kw), si=si, headers=headers)


def mkdir(si, name):
    si.content.fileManager.MakeDirectory(f"[{DS}] {name}", helpers.dc(si))


# --- datastore file transfer -------------------------------------------------------------

def test_put_then_get_returns_same_bytes(si, sim):
    mkdir(si, "d1")
    r = put(sim, si, "d1/hello.txt", b"hello, datastore")
    assert r.status_code in (200, 201)
    r = get(sim, si, "d1/hello.txt")
    assert r.status_code == 200
    assert r.content == b"hello, datastore"


def test_put_new_file_returns_201_and_overwrite_returns_200(si, sim):
    mkdir(si, "d1")
    assert put(sim, si, "d1/f", b"one").status_code == 201
    assert put(sim, si, "d1/f", b"two").status_code == 200
    assert get(sim, si, "d1/f").content == b"two"


def test_uploaded_file_is_on_the_datastore(si, sim):
    mkdir(si, "d1")
    put(sim, si, "d1/visible.txt", b"abc")
    assert helpers.ds_local(si, f"[{DS}] d1/visible.txt").read_bytes() == b"abc"


def test_large_random_payload_round_trip(si, sim):
    mkdir(si, "big")
    payload = helpers.random_bytes(5 * 1024 * 1024 + 123)
    r = put(sim, si, "big/blob.bin", payload)
    assert r.status_code in (200, 201)
    r = get(sim, si, "big/blob.bin")
    assert r.status_code == 200
    assert len(r.content) == len(payload)
    assert hashlib.sha256(r.content).digest() == hashlib.sha256(payload).digest()


def test_get_with_range_returns_206_and_those_bytes(si, sim):
    mkdir(si, "d1")
    put(sim, si, "d1/hello.txt", b"0123456789")
    r = get(sim, si, "d1/hello.txt", headers={"Range": "bytes=2-5"})
    assert r.status_code == 206
    assert r.content == b"2345"
    assert r.headers["Content-Range"] == "bytes 2-5/10"


def test_get_with_suffix_range(si, sim):
    mkdir(si, "d1")
    put(sim, si, "d1/hello.txt", b"0123456789")
    r = get(sim, si, "d1/hello.txt", headers={"Range": "bytes=-3"})
    assert r.status_code == 206
    assert r.content == b"789"


def test_get_with_unsatisfiable_range_returns_416(si, sim):
    mkdir(si, "d1")
    put(sim, si, "d1/hello.txt", b"0123456789")
    r = get(sim, si, "d1/hello.txt", headers={"Range": "bytes=50-60"})
    assert r.status_code == 416


def test_head_reports_content_length(si, sim):
    mkdir(si, "d1")
    put(sim, si, "d1/h.bin", b"x" * 1234)
    r = helpers.http("HEAD", helpers.folder_url(sim, "d1/h.bin"), si=si)
    assert r.status_code == 200
    assert r.headers["Content-Length"] == "1234"


def test_delete_returns_204_then_get_404(si, sim):
    mkdir(si, "d1")
    put(sim, si, "d1/bye.txt", b"bye")
    r = helpers.http("DELETE", helpers.folder_url(sim, "d1/bye.txt"), si=si)
    assert r.status_code == 204
    assert get(sim, si, "d1/bye.txt").status_code == 404


def test_get_missing_file_returns_404(si, sim):
    assert get(sim, si, "nothing/here.txt").status_code == 404


def test_request_without_cookie_returns_401(si, sim):
    mkdir(si, "d1")
    put(sim, si, "d1/secret.txt", b"s")
    r = helpers.http("GET", helpers.folder_url(sim, "d1/secret.txt"))
    assert r.status_code == 401


def test_put_without_cookie_returns_401_and_writes_nothing(si, sim):
    mkdir(si, "d1")
    r = helpers.http("PUT", helpers.folder_url(sim, "d1/anon.txt"), data=b"x")
    assert r.status_code == 401
    assert not helpers.ds_local(si, f"[{DS}] d1/anon.txt").exists()


def test_request_with_logged_out_cookie_returns_401(sim):
    si = sim.connect()
    mkdir(si, "d1")
    stale = helpers.cookie(si)
    si.content.sessionManager.Logout()
    r = helpers.http("GET", helpers.folder_url(sim, "d1"), headers={"Cookie": stale})
    assert r.status_code == 401


def test_put_into_nonexistent_directory_returns_404(si, sim):
    r = put(sim, si, "no-such-dir/file.txt", b"x")
    assert r.status_code == 404
    assert not helpers.ds_local(si, f"[{DS}] no-such-dir").exists()


def test_unknown_datastore_returns_404(si, sim):
    r = get(sim, si, "x.txt", ds="nope")
    assert r.status_code == 404


def test_unknown_datacenter_returns_404(si, sim):
    r = get(sim, si, "x.txt", dc_path="NoSuchDC")
    assert r.status_code == 404


def test_encoded_dotdot_cannot_escape_datastore(si, sim):
    # /folder/%2e%2e/... must not reach files outside the datastore directory
    url = (f"https://{sim.host}:{sim.port}/folder/%2e%2e/%2e%2e/sim.crt"
           f"?dcPath=DC0&dsName={DS}")
    r = helpers.http("GET", url, si=si)
    assert r.status_code in (400, 403, 404)
    assert b"BEGIN CERTIFICATE" not in r.content


def test_put_with_encoded_dotdot_cannot_write_outside_datastore(si, sim):
    url = (f"https://{sim.host}:{sim.port}/folder/%2e%2e/escaped.txt"
           f"?dcPath=DC0&dsName={DS}")
    r = helpers.http("PUT", url, si=si, data=b"x")
    assert r.status_code in (400, 403, 404)
    root = helpers.ds_local(si, f"[{DS}] x").parent
    assert not (root.parent / "escaped.txt").exists()


def test_vm_file_uploaded_over_http_visible_in_datastore_browser(si, sim):
    helpers.create_vm(si, "httpvm")
    put(sim, si, "httpvm/extra.iso", b"iso")
    res = helpers.wait(helpers.datastore(si).browser.SearchDatastore_Task(
        f"[{DS}] httpvm", None))
    assert "extra.iso" in [f.path for f in res.file]


# --- raw SOAP ---------------------------------------------------------------------------

def soap_post(sim, body, cookie=None):
    req = urllib.request.Request(
        sim.url, data=body if isinstance(body, bytes) else body.encode(),
        headers={"Content-Type": "text/xml; charset=utf-8",
                 "SOAPAction": "urn:vim25/8.0.3.0",
                 **({"Cookie": cookie} if cookie else {})})
    try:
        with urllib.request.urlopen(req, context=ssl._create_unverified_context(),
                                    timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def envelope(inner):
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            f"<soapenv:Body>{inner}</soapenv:Body></soapenv:Envelope>")


FROBNICATE = envelope('<Frobnicate xmlns="urn:vim25">'
                      '<_this type="ServiceInstance">ServiceInstance</_this></Frobnicate>')


def test_unknown_method_returns_500_soap_fault_naming_method(si, sim):
    status, body = soap_post(sim, FROBNICATE, helpers.cookie(si))
    assert status == 500
    assert "Fault>" in body
    fs = re.search(r"<faultstring>(.*?)</faultstring>", body, re.S)
    assert fs and "Frobnicate" in fs.group(1)
    assert "MethodNotFound" in body


def test_unknown_method_fault_code_is_server(si, sim):
    status, body = soap_post(sim, FROBNICATE, helpers.cookie(si))
    assert re.search(r"<faultcode>[^<]*ServerFaultCode</faultcode>", body)


def test_malformed_xml_returns_client_fault(si, sim):
    status, body = soap_post(sim, b"<soapenv:Envelope><oops", helpers.cookie(si))
    assert status == 500
    assert re.search(r"<faultcode>[^<]*ClientFaultCode</faultcode>", body)
    assert "InvalidRequest" in body


def test_simulator_keeps_serving_after_malformed_request(si, sim):
    soap_post(sim, b"\x00\xff not xml at all", helpers.cookie(si))
    soap_post(sim, b"<a><b></a>", helpers.cookie(si))
    assert si.content.rootFolder.childEntity[0].name == "DC0"


def test_raw_soap_without_cookie_raises_not_authenticated(sim):
    body = envelope('<RetrieveProperties xmlns="urn:vim25">'
                    '<_this type="PropertyCollector">propertyCollector</_this>'
                    '<specSet><propSet><type>Folder</type><pathSet>name</pathSet></propSet>'
                    '<objectSet><obj type="Folder">group-d1</obj></objectSet></specSet>'
                    '</RetrieveProperties>')
    status, text = soap_post(sim, body)
    assert status == 500
    assert "NotAuthenticated" in text


def test_retrieve_service_content_works_without_session(sim):
    body = envelope('<RetrieveServiceContent xmlns="urn:vim25">'
                    '<_this type="ServiceInstance">ServiceInstance</_this>'
                    '</RetrieveServiceContent>')
    status, text = soap_post(sim, body)
    assert status == 200
    assert "<apiVersion>8.0.3.0</apiVersion>" in text


def test_vim_service_versions_lists_8_0_3(sim):
    r = helpers.http("GET", f"https://{sim.host}:{sim.port}/sdk/vimServiceVersions.xml")
    assert r.status_code == 200
    assert "<version>8.0.3.0</version>" in r.text
    assert "urn:vim25" in r.text


# --- REST session -------------------------------------------------------------------------

def rest(sim, method, headers=None, auth=None):
    h = dict(headers or {})
    if auth:
        h["Authorization"] = "Basic " + base64.b64encode(
            f"{auth[0]}:{auth[1]}".encode()).decode()
    return helpers.http(method, f"https://{sim.host}:{sim.port}/api/session", headers=h)


def creds(sim):
    return sim.info["username"], sim.info["password"]


def test_rest_login_returns_201_and_session_id_string(sim):
    r = rest(sim, "POST", auth=creds(sim))
    assert r.status_code == 201
    sid = r.json()
    assert isinstance(sid, str) and sid


def test_rest_get_session_returns_user(sim):
    sid = rest(sim, "POST", auth=creds(sim)).json()
    r = rest(sim, "GET", headers={"vmware-api-session-id": sid})
    assert r.status_code == 200
    assert r.json()["user"] == sim.info["username"]


def test_rest_logout_returns_204_and_invalidates_session(sim):
    sid = rest(sim, "POST", auth=creds(sim)).json()
    assert rest(sim, "DELETE", headers={"vmware-api-session-id": sid}).status_code == 204
    assert rest(sim, "GET", headers={"vmware-api-session-id": sid}).status_code == 401


def test_rest_login_with_bad_password_returns_401(sim):
    r = rest(sim, "POST", auth=(sim.info["username"], "wrong"))
    assert r.status_code == 401


def test_rest_login_without_credentials_returns_401(sim):
    assert rest(sim, "POST").status_code == 401


def test_rest_get_session_without_id_returns_401(sim):
    assert rest(sim, "GET").status_code == 401


def test_rest_session_id_works_for_datastore_http(si, sim):
    mkdir(si, "d1")
    put(sim, si, "d1/r.txt", b"rest")
    sid = rest(sim, "POST", auth=creds(sim)).json()
    r = helpers.http("GET", helpers.folder_url(sim, "d1/r.txt"),
                     headers={"vmware-api-session-id": sid})
    assert r.status_code == 200
    assert r.content == b"rest"


def test_carriage_return_in_extra_config_value_round_trips(si, sim):
    # pyvmomi cannot carry a bare CR (XML parsers normalise CRLF), so set the value with
    # a raw SOAP call using a character reference; the simulator must then escape the
    # CR (&#13;) when it answers, or every conforming XML client reads "\n" back.
    vm = helpers.create_vm(si, "crlf")
    body = envelope(
        '<ReconfigVM_Task xmlns="urn:vim25">'
        f'<_this type="VirtualMachine">{vm._moId}</_this>'
        '<spec><extraConfig><key>crlf.value</key>'
        '<value xsi:type="xsd:string" xmlns:xsd="http://www.w3.org/2001/XMLSchema">'
        'x&#13;&#10;y</value></extraConfig></spec></ReconfigVM_Task>')
    status, text = soap_post(sim, body, helpers.cookie(si))
    assert status == 200, text
    task_id = re.search(r'type="Task">([^<]+)<', text).group(1)
    helpers.wait(vim.Task(task_id, si._stub))
    assert helpers.extra_config(vm)["crlf.value"] == "x\r\ny"
