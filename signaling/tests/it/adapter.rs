//! The adapter the gateway serves is the real one, and it implements NAF's interface.

use signaling::NAF_ADAPTER_JS;

#[test]
fn adapter_registers_as_dlux_and_implements_the_naf_interface() {
    assert!(NAF_ADAPTER_JS.contains(r#"NAF.adapters.register("dlux", DluxAdapter)"#));
    for method in [
        "setServerUrl",
        "setApp",
        "setRoom",
        "setWebRtcOptions",
        "setServerConnectListeners",
        "setRoomOccupantListener",
        "setDataChannelListeners",
        "connect",
        "shouldStartConnectionTo",
        "startStreamConnection",
        "closeStreamConnection",
        "getConnectStatus",
        "getMediaStream",
        "getServerTime",
        "sendData",
        "sendDataGuaranteed",
        "broadcastData",
        "broadcastDataGuaranteed",
        "disconnect",
        "enableMicrophone",
        "startScreenShare",
        "stopScreenShare",
        "sendChat",
        "setJoinCredentials",
    ] {
        assert!(
            NAF_ADAPTER_JS.contains(&format!("\n    {method}("))
                || NAF_ADAPTER_JS.contains(&format!("\n    async {method}(")),
            "adapter lacks {method}"
        );
    }
}

/// The adapter's own tests (signaling/js/test, node's test runner, driving it as NAF does against a fake
/// socket) run with the suite. Node is installed by scripts/test.
#[test]
fn the_adapters_javascript_tests_pass() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("js/test");
    let output = std::process::Command::new("node")
        .arg("--test")
        .arg(&dir)
        .output()
        .expect("node is installed (scripts/test installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("# fail 0") && !stdout.contains("# pass 0"), "{stdout}");
}
