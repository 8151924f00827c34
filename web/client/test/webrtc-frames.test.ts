// The byte-level looks the WebRTC transport takes at frames: the tick of a binary state
// (PROTOCOL.md 6.2) and the inputs of a binary input batch (section 7).
import { expect, test } from "vitest";
import { binaryStateTick, filterInputBatch, parseInputBatch } from "../src/webrtc.js";

/** An input batch as section 7 lays it out: ack + 1, count, then per input seq, flags, [tick],
 * movement x/z, [look]. */
function batch(ack: number | null, inputs: { seq: number; tick?: number; look?: boolean }[]): Uint8Array {
  const out = [1, 0x81, ...varint(ack === null ? 0 : ack + 1), ...varint(inputs.length)];
  for (const input of inputs) {
    out.push(...varint(input.seq));
    out.push((input.tick !== undefined ? 0x04 : 0) | (input.look ? 0x08 : 0) | 0x02);
    if (input.tick !== undefined) out.push(...varint(input.tick));
    out.push(127, 0x81);
    if (input.look) out.push(0, 0, 0, 0, 0xff, 0x7f);
  }
  return new Uint8Array(out);
}

function varint(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) byte |= 0x80;
    out.push(byte);
  } while (value > 0);
  return out;
}

test("the inputs of a batch are found, and a filtered batch is the batch of the kept ones", () => {
  const inputs = [
    { seq: 300, tick: 70_000, look: true },
    { seq: 301 },
    { seq: 4_294_967_295, tick: 1, look: false },
  ];
  const bytes = batch(123_456, inputs);
  const parsed = parseInputBatch(bytes)!;
  expect(parsed.inputs.map((input) => input.seq)).toEqual([300, 301, 4_294_967_295]);
  const kept = filterInputBatch(bytes, parsed, (seq) => seq !== 301);
  expect(Array.from(kept)).toEqual(Array.from(batch(123_456, [inputs[0], inputs[2]])));
  // Nothing dropped: the very same frame.
  expect(filterInputBatch(bytes, parsed, () => true)).toBe(bytes);
  expect(Array.from(filterInputBatch(bytes, parsed, () => false))).toEqual(Array.from(batch(123_456, [])));
});

test("what is not a well-formed input batch is left alone", () => {
  expect(parseInputBatch(new Uint8Array([1, 0x82, 5]))).toBeNull(); // an ack
  expect(parseInputBatch(new Uint8Array([1, 0x81, 0, 1, 7]))).toBeNull(); // truncated
  const bytes = batch(null, [{ seq: 1 }]);
  expect(parseInputBatch(new Uint8Array([...bytes, 0]))).toBeNull(); // trailing bytes
  expect(parseInputBatch(new Uint8Array([]))).toBeNull();
});

test("the tick of a binary state message", () => {
  expect(binaryStateTick(new Uint8Array([1, 0x01, 0x01, ...varint(987_654), 0, 0]))).toBe(987_654);
  expect(binaryStateTick(new Uint8Array([1, 0x81, 0, 1]))).toBeNull();
  expect(binaryStateTick(new Uint8Array([1, 0x01, 0, 0x80]))).toBeNull();
});
