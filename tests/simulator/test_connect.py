"""Connecting, certificate pinning, authentication and sessions."""

import datetime
import hashlib
import ssl
import time

import pytest
from pyVim.connect import Connect, Disconnect, SmartConnect
from pyVmomi import SoapStubAdapter, vim
from pyVmomi.Security import ThumbprintMismatchException

import helpers

API_VERSION_ID = "vim.version.v8_0_3_0"


def served_cert_der(sim):
    pem = ssl.get_server_certificate((sim.host, sim.port))
    return ssl.PEM_cert_to_DER_cert(pem)


def colon_hex(digest):
    return ":".join(f"{b:02X}" for b in digest)


def pinned_connect(sim, thumbprint):
    """Connect with a *verifying* SSL context plus a pinned thumbprint.

    pyVim.connect.getSslContext() swaps in an unverified context for 127.0.0.1/localhost
    when no context is given, and the SOAP adapter only checks a pinned thumbprint after
    normal verification fails; so pinning is really exercised only with a verifying
    context. SmartConnect cannot be used for that (its vimServiceVersions.xml probe
    would fail verification on the self-signed certificate), hence Connect with an
    explicit version.
    """
    ctx = ssl.create_default_context()
    return Connect(host=sim.host, port=sim.port, user=sim.info["username"],
                   pwd=sim.info["password"], version=API_VERSION_ID,
                   thumbprint=thumbprint, sslContext=ctx)


# --- connect & about -----------------------------------------------------------------

def test_smartconnect_without_cert_validation_returns_root_folder(sim):
    si = SmartConnect(host=sim.host, port=sim.port, user=sim.info["username"],
                      pwd=sim.info["password"], disableSslCertValidation=True)
    try:
        root = si.content.rootFolder
        assert isinstance(root, vim.Folder)
        assert root.name == "Datacenters"
    finally:
        Disconnect(si)


def test_about_reports_virtualcenter_api_8_0_3(si):
    about = si.content.about
    assert about.apiType == "VirtualCenter"
    assert about.apiVersion == "8.0.3.0"
    assert about.version.startswith("8.0.3")
    assert about.productLineId == "vpx"
    assert about.instanceUuid


def test_smartconnect_negotiates_api_version_8_0_3(si):
    assert si._stub.versionId.strip('"') == "urn:vim25/8.0.3.0"


def test_info_sha1_thumbprint_matches_served_certificate(sim):
    der = served_cert_der(sim)
    assert sim.info["sha1"] == colon_hex(hashlib.sha1(der).digest())


def test_info_sha256_thumbprint_matches_served_certificate(sim):
    der = served_cert_der(sim)
    assert sim.info["sha256"] == colon_hex(hashlib.sha256(der).digest())


def test_smartconnect_accepts_sha1_thumbprint_with_colons(sim):
    # pyvmomi strips ':' and lower-cases the thumbprint itself, so the colon form works.
    si = SmartConnect(host=sim.host, port=sim.port, user=sim.info["username"],
                      pwd=sim.info["password"], thumbprint=sim.info["sha1"])
    try:
        assert si.content.about.apiType == "VirtualCenter"
    finally:
        Disconnect(si)


def test_smartconnect_accepts_sha1_thumbprint_without_colons(sim):
    tp = sim.info["sha1"].replace(":", "").lower()
    si = SmartConnect(host=sim.host, port=sim.port, user=sim.info["username"],
                      pwd=sim.info["password"], thumbprint=tp)
    try:
        assert si.content.about.apiType == "VirtualCenter"
    finally:
        Disconnect(si)


def test_pinned_sha1_thumbprint_is_accepted_with_verifying_context(sim):
    si = pinned_connect(sim, sim.info["sha1"])
    try:
        assert si.content.sessionManager.currentSession is not None
    finally:
        Disconnect(si)


def test_pinned_sha256_thumbprint_is_accepted_with_verifying_context(sim):
    si = pinned_connect(sim, sim.info["sha256"])
    try:
        assert si.content.about.apiVersion == "8.0.3.0"
    finally:
        Disconnect(si)


def test_wrong_pinned_thumbprint_is_refused(sim):
    wrong = ":".join(["00"] * 20)
    # pyVim.connect.Connect wraps the ThumbprintMismatchException in HostConnectFault.
    with pytest.raises((ThumbprintMismatchException, vim.fault.HostConnectFault),
                       match="(?i)thumbprint mismatch"):
        pinned_connect(sim, wrong)


def test_pinned_thumbprint_of_other_simulator_is_refused(sim, sim_factory):
    other = sim_factory()
    assert other.info["sha1"] != sim.info["sha1"]
    with pytest.raises((ThumbprintMismatchException, vim.fault.HostConnectFault),
                       match="(?i)thumbprint mismatch"):
        pinned_connect(sim, other.info["sha1"])


# --- authentication --------------------------------------------------------------------

def test_wrong_password_raises_invalid_login(sim):
    with pytest.raises(vim.fault.InvalidLogin):
        sim.connect(pwd="not-the-password")


def test_wrong_user_name_raises_invalid_login(sim):
    with pytest.raises(vim.fault.InvalidLogin):
        sim.connect(user="nobody@vsphere.local")


def test_custom_credentials_from_cli_flags(sim_factory):
    s = sim_factory(["--username", "root", "--password", "s3cret!"])
    assert s.info["username"] == "root"
    si = s.connect()
    try:
        assert si.content.sessionManager.currentSession.userName == "root"
    finally:
        Disconnect(si)
    with pytest.raises(vim.fault.InvalidLogin):
        s.connect(user="administrator@vsphere.local", pwd="vmware")


def test_current_session_user_name(si, sim):
    s = si.content.sessionManager.currentSession
    assert s.userName == sim.info["username"]
    assert s.key
    assert isinstance(s.loginTime, datetime.datetime)


def test_login_sets_vmware_soap_session_cookie(si):
    assert "vmware_soap_session=" in si._stub.cookie


def test_calls_after_logout_raise_not_authenticated(sim):
    si = sim.connect()
    content = si.content
    content.sessionManager.Logout()
    with pytest.raises(vim.fault.NotAuthenticated):
        content.rootFolder.childEntity


def test_call_without_session_raises_not_authenticated(sim):
    stub = SoapStubAdapter(host=sim.host, port=sim.port, version=API_VERSION_ID,
                           sslContext=helpers.unverified_context())
    si = vim.ServiceInstance("ServiceInstance", stub)
    content = si.RetrieveContent()  # allowed before login, as on vCenter
    assert content.about.apiType == "VirtualCenter"
    with pytest.raises(vim.fault.NotAuthenticated):
        content.rootFolder.childEntity


def test_login_on_unauthenticated_stub_then_calls_work(sim):
    stub = SoapStubAdapter(host=sim.host, port=sim.port, version=API_VERSION_ID,
                           sslContext=helpers.unverified_context())
    si = vim.ServiceInstance("ServiceInstance", stub)
    content = si.RetrieveContent()
    session = content.sessionManager.Login(sim.info["username"], sim.info["password"])
    assert session.userName == sim.info["username"]
    assert content.rootFolder.childEntity[0].name == "DC0"


def test_session_is_active_true_for_own_session(si, sim):
    sm = si.content.sessionManager
    key = sm.currentSession.key
    assert sm.SessionIsActive(key, sim.info["username"]) is True


def test_session_is_active_false_for_unknown_session(si, sim):
    sm = si.content.sessionManager
    assert sm.SessionIsActive("00000000-0000-0000-0000-000000000000",
                              sim.info["username"]) is False


def test_session_is_active_false_after_other_session_logs_out(sim):
    a = sim.connect()
    b = sim.connect()
    key_b = b.content.sessionManager.currentSession.key
    b.content.sessionManager.Logout()
    assert a.content.sessionManager.SessionIsActive(key_b, sim.info["username"]) is False
    Disconnect(a)


def test_two_logins_get_distinct_sessions_and_logout_is_independent(sim):
    a = sim.connect()
    b = sim.connect()
    ka = a.content.sessionManager.currentSession.key
    kb = b.content.sessionManager.currentSession.key
    assert ka != kb
    Disconnect(b)
    # a is unaffected by b's logout
    assert a.content.rootFolder.childEntity[0].name == "DC0"
    Disconnect(a)


def test_idle_session_expires_after_session_timeout(sim_factory):
    s = sim_factory(["--session-timeout", "1"])
    si = s.connect()
    content = si.content
    assert content.rootFolder.name == "Datacenters"
    # allow-sleep: idling past the session timeout is the behaviour under test.
    time.sleep(1.3)
    with pytest.raises(vim.fault.NotAuthenticated):
        content.rootFolder.childEntity


def test_current_time_is_close_to_now(si):
    t = si.CurrentTime()
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - t).total_seconds()) < 60
