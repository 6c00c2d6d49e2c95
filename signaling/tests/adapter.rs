//! The adapter the gateway serves is the real one, and it implements NAF's interface.

use signaling::NAF_ADAPTER_JS;

#[test]
fn adapter_registers_as_dlux_and_implements_the_naf_interface() {
    assert!(NAF_ADAPTER_JS.contains(r#"NAF.adapters.register("dlux", DluxAdapter)"#));
    for method in [
        "setServerUrl", "setApp", "setRoom", "setWebRtcOptions", "setServerConnectListeners",
        "setRoomOccupantListener", "setDataChannelListeners", "connect", "shouldStartConnectionTo",
        "startStreamConnection", "closeStreamConnection", "getConnectStatus", "getMediaStream",
        "getServerTime", "sendData", "sendDataGuaranteed", "broadcastData", "broadcastDataGuaranteed",
        "disconnect", "enableMicrophone", "startScreenShare", "stopScreenShare", "sendChat", "setJoinCredentials",
    ] {
        assert!(NAF_ADAPTER_JS.contains(&format!("\n    {method}(")) || NAF_ADAPTER_JS.contains(&format!("\n    async {method}(")),
            "adapter lacks {method}");
    }
}
