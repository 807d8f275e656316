"""Control of the live demo simulator: status, pause, resume, speed."""

from __future__ import annotations

from typing import Any, Protocol

from flask import Blueprint, Flask, Response, jsonify, request

from tower.web.auth import bearer_ok


class LiveControl(Protocol):
    def status(self) -> dict[str, Any]: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def set_speed(self, speed: float) -> None: ...


def install_demo_api(server: Flask, live: LiveControl, *, token: str | None) -> None:
    """`GET /api/v1/demo`, `POST /api/v1/demo/pause|resume`, `POST /api/v1/demo/speed?value=`."""
    api = Blueprint("tower_demo", __name__)

    def allowed() -> bool:
        return bearer_ok(token)

    def answer() -> tuple[Response, int]:
        return jsonify(live.status()), 200

    @api.get("/api/v1/demo")
    def status() -> tuple[Response, int]:
        return answer()

    @api.post("/api/v1/demo/<action>")
    def act(action: str) -> tuple[Response, int]:
        if not allowed():
            return jsonify({"error": "missing or wrong bearer token"}), 401
        if action == "pause":
            live.pause()
        elif action == "resume":
            live.resume()
        elif action == "speed":
            try:
                live.set_speed(float(request.args.get("value", "")))
            except ValueError as exc:
                return jsonify({"error": f"value: {exc}"}), 400
        else:
            return jsonify({"error": f"unknown action {action!r} (pause, resume, speed)"}), 404
        return answer()

    server.register_blueprint(api)
