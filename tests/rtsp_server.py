"""A real RTSP server for the camera tests: GStreamer's, run by the system python3.

Started as ``/usr/bin/python3 tests/rtsp_server.py PORT [sdp-only | hevc]`` (it needs
Debian's python3-gi and gir1.2-gst-rtsp-server-1.0, which the project's virtual
environment does not see). It serves a moving test pattern as H.264 at
rtsp://127.0.0.1:PORT/cam and prints "ready" once it listens. The stream carries its SPS
and PPS ahead of each keyframe, as most cameras send them; with ``sdp-only`` it carries
them only in the SDP (``sprop-parameter-sets``), as some cameras do. With ``hevc`` the
stream is HEVC, its parameter sets in the SDP and ahead of each IDR picture (the server
asks for one for each new client).
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

SOURCE = "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=10/1"
H264 = "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10{form} ! rtph264pay"
# x264 in AVC form without repeated headers: the payloader puts the sets in the SDP only.
SDP_ONLY = " option-string=repeat-headers=0 ! video/x-h264,stream-format=avc"
HEVC = (
    "x265enc tune=zerolatency speed-preset=ultrafast key-int-max=10"
    " ! h265parse ! video/x-h265,stream-format=hvc1 ! rtph265pay"
)


def main() -> None:
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(sys.argv[1])
    factory = GstRtspServer.RTSPMediaFactory()
    mode = sys.argv[2] if len(sys.argv) > 2 else ""
    encoder = HEVC if mode == "hevc" else H264.format(form=SDP_ONLY if mode == "sdp-only" else "")
    factory.set_launch(f"( {SOURCE} ! {encoder} name=pay0 pt=96 )")
    factory.set_shared(True)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print("cannot listen", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
