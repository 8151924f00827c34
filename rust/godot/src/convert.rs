//! Conversions between Godot types and the core's plain types (JSON values, `[f32; N]` arrays).
//! Every Godot class converts here and nowhere else.

use godot::prelude::*;
use serde_json::{Map, Number, Value};

/// `Vector3` to the core's `[x, y, z]`.
pub fn vec3_to_array(v: Vector3) -> [f32; 3] {
    [v.x, v.y, v.z]
}

/// The core's `[x, y, z]` to `Vector3`.
pub fn array_to_vec3(a: [f32; 3]) -> Vector3 {
    Vector3::new(a[0], a[1], a[2])
}

/// The core's quaternion `[x, y, z, w]` to `Quaternion`.
pub fn array_to_quat(q: [f32; 4]) -> Quaternion {
    Quaternion::new(q[0], q[1], q[2], q[3])
}

/// `Quaternion` to the core's `[x, y, z, w]`.
pub fn quat_to_array(q: Quaternion) -> [f32; 4] {
    [q.x, q.y, q.z, q.w]
}

/// A JSON value as a Godot `Variant` (objects become `Dictionary`, arrays `Array`, integers `int`).
pub fn json_to_variant(value: &Value) -> Variant {
    match value {
        Value::Null => Variant::nil(),
        Value::Bool(b) => b.to_variant(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.to_variant(),
            None => n.as_f64().unwrap_or(0.0).to_variant(),
        },
        Value::String(s) => GString::from(s.as_str()).to_variant(),
        Value::Array(items) => {
            let mut array = VarArray::new();
            for item in items {
                array.push(&json_to_variant(item));
            }
            array.to_variant()
        }
        Value::Object(map) => json_object_to_dictionary(map).to_variant(),
    }
}

/// A JSON object as a Godot `Dictionary`.
pub fn json_object_to_dictionary(map: &Map<String, Value>) -> VarDictionary {
    let mut dict = VarDictionary::new();
    for (key, item) in map {
        dict.set(
            &GString::from(key.as_str()).to_variant(),
            &json_to_variant(item),
        );
    }
    dict
}

/// Any serialisable core value (a world state, an object state, an event) as a Godot `Variant`.
pub fn to_variant<T: serde::Serialize>(value: &T) -> Variant {
    match serde_json::to_value(value) {
        Ok(json) => json_to_variant(&json),
        Err(error) => {
            godot_error!("Nexus Physics: could not convert a value for Godot: {error}");
            Variant::nil()
        }
    }
}

/// A Godot `Variant` as JSON. Vectors become `[x, y, z]`, quaternions `[x, y, z, w]`, colours
/// `[r, g, b, a]`. Fails on values JSON cannot carry (objects, callables, non-finite floats).
pub fn variant_to_json(value: &Variant) -> Result<Value, String> {
    let floats = |items: &[f32]| -> Result<Value, String> {
        items
            .iter()
            .map(|&f| {
                Number::from_f64(f64::from(f))
                    .map(Value::Number)
                    .ok_or_else(|| format!("{f} is not a finite number"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array)
    };
    Ok(match value.get_type() {
        VariantType::NIL => Value::Null,
        VariantType::BOOL => Value::Bool(value.to::<bool>()),
        VariantType::INT => Value::from(value.to::<i64>()),
        VariantType::FLOAT => {
            let f = value.to::<f64>();
            Value::Number(Number::from_f64(f).ok_or_else(|| format!("{f} is not a finite number"))?)
        }
        VariantType::STRING | VariantType::STRING_NAME | VariantType::NODE_PATH => {
            Value::String(value.to_string())
        }
        VariantType::VECTOR2 => {
            let v = value.to::<Vector2>();
            floats(&[v.x, v.y])?
        }
        VariantType::VECTOR3 => {
            let v = value.to::<Vector3>();
            floats(&[v.x, v.y, v.z])?
        }
        VariantType::QUATERNION => floats(&quat_to_array(value.to::<Quaternion>()))?,
        VariantType::COLOR => {
            let c = value.to::<Color>();
            floats(&[c.r, c.g, c.b, c.a])?
        }
        VariantType::ARRAY => Value::Array(
            value
                .to::<VarArray>()
                .iter_shared()
                .map(|item| variant_to_json(&item))
                .collect::<Result<_, _>>()?,
        ),
        VariantType::PACKED_FLOAT32_ARRAY => floats(value.to::<PackedFloat32Array>().as_slice())?,
        VariantType::PACKED_INT32_ARRAY => Value::Array(
            value
                .to::<PackedInt32Array>()
                .as_slice()
                .iter()
                .map(|&i| Value::from(i))
                .collect(),
        ),
        VariantType::PACKED_INT64_ARRAY => Value::Array(
            value
                .to::<PackedInt64Array>()
                .as_slice()
                .iter()
                .map(|&i| Value::from(i))
                .collect(),
        ),
        VariantType::PACKED_STRING_ARRAY => Value::Array(
            value
                .to::<PackedStringArray>()
                .as_slice()
                .iter()
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
        VariantType::PACKED_VECTOR3_ARRAY => Value::Array(
            value
                .to::<PackedVector3Array>()
                .as_slice()
                .iter()
                .map(|v| floats(&[v.x, v.y, v.z]))
                .collect::<Result<_, _>>()?,
        ),
        VariantType::DICTIONARY => Value::Object(dictionary_to_json(&value.to::<VarDictionary>())?),
        other => return Err(format!("a {other:?} cannot be sent as JSON")),
    })
}

/// A Godot `Dictionary` as a JSON object (keys are stringified).
pub fn dictionary_to_json(dict: &VarDictionary) -> Result<Map<String, Value>, String> {
    let mut map = Map::new();
    for (key, item) in dict.iter_shared() {
        let json = variant_to_json(&item).map_err(|e| format!("{key}: {e}"))?;
        map.insert(key.to_string(), json);
    }
    Ok(map)
}

/// Emits `signal` on `object` at the end of the frame. Every node emits its simulation signals
/// this way: they arise inside the tick, while the node is bound, and a handler calling back into
/// it must find it free.
pub fn emit_deferred(object: &mut godot::classes::Object, signal: &str, args: &[Variant]) {
    let mut call_args = vec![StringName::from(signal).to_variant()];
    call_args.extend_from_slice(args);
    object.call_deferred("emit_signal", &call_args);
}

/// A Godot `Dictionary` deserialised into a core type (e.g. an `ObjectDesc`), with a readable error.
pub fn from_dictionary<T: serde::de::DeserializeOwned>(dict: &VarDictionary) -> Result<T, String> {
    let json = Value::Object(dictionary_to_json(dict)?);
    serde_json::from_value(json).map_err(|e| e.to_string())
}
