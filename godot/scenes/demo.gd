## The demo arena: cycles the weather every `weather_period` seconds.
extends Node3D

@export var weather_period := 60.0
var _weathers := ["clear", "rain", "storm", "fog"]
var _index := 0
var _elapsed := 0.0


func _process(delta: float) -> void:
	_elapsed += delta
	if _elapsed >= weather_period:
		_elapsed = 0.0
		_index = (_index + 1) % _weathers.size()
		$World/Environment.set_weather(_weathers[_index], 10.0)
