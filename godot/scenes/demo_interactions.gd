## The demo's interaction rules on top of the world's own checks: locked items cannot be picked
## up, and a custom "wave" interaction that answers with an emote.
extends InteractionSystem


func _ready() -> void:
	register_interaction("wave", _on_wave)


func _veto_interaction(request: Dictionary) -> String:
	var target: Dictionary = request.get("target_state", {})
	var properties: Dictionary = target.get("properties", {})
	if request.get("kind") == "pickup" and properties.get("locked", false):
		return "this item is locked"
	return ""


func _on_wave(request: Dictionary) -> Dictionary:
	return {"success": true, "code": "ok", "message": "", "data": {"emote": "wave", "from": request.get("client_id")}}
