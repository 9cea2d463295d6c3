/**
 * Just enough of the ONNX protobuf schema (onnx/onnx.proto, IR version 8) to write the
 * small graphs the tests run through onnxruntime: a model, a graph, nodes with int
 * attributes, float32 and int64 initializers, and typed inputs and outputs with named or
 * fixed dimensions. Field numbers are onnx.proto's.
 */

/** A protobuf message under construction: fields appended in order. */
class Message {
  private readonly parts: Uint8Array[] = [];

  private varint(value: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(value));
    const bytes: number[] = [];
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v !== 0n) byte |= 0x80;
      bytes.push(byte);
    } while (v !== 0n);
    this.parts.push(Uint8Array.from(bytes));
  }

  private key(field: number, wireType: 0 | 2 | 5): void {
    this.varint((field << 3) | wireType);
  }

  int(field: number, value: number | bigint): this {
    this.key(field, 0);
    this.varint(value);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.key(field, 2);
    this.varint(value.length);
    this.parts.push(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, value: Message): this {
    return this.bytes(field, value.encode());
  }

  encode(): Uint8Array {
    const size = this.parts.reduce((sum, p) => sum + p.length, 0);
    const out = new Uint8Array(size);
    let offset = 0;
    for (const part of this.parts) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  }
}

/** onnx.proto `TensorProto.DataType` values used here. */
export const ELEM = { float: 1, int64: 7 } as const;
export type ElemType = (typeof ELEM)[keyof typeof ELEM];

/** A graph input or output: element type and shape (a number is fixed, a string is symbolic). */
export interface ValueInfo {
  readonly name: string;
  readonly elemType: ElemType;
  readonly shape: readonly (number | string)[];
}

/** A constant tensor stored in the graph. */
export interface Initializer {
  readonly name: string;
  readonly dims: readonly number[];
  readonly data: Float32Array | BigInt64Array;
}

export interface Node {
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  /** Integer attributes (`axis`, `keepdims`, ...). */
  readonly attributes?: Readonly<Record<string, number>>;
}

export interface Graph {
  readonly nodes: readonly Node[];
  readonly initializers: readonly Initializer[];
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
  /** Default opset version of the `ai.onnx` domain. @default 14 */
  readonly opset?: number;
}

function valueInfo(info: ValueInfo): Message {
  const shape = new Message();
  for (const dim of info.shape) {
    shape.message(1, typeof dim === 'number' ? new Message().int(1, dim) : new Message().string(2, dim));
  }
  const tensorType = new Message().int(1, info.elemType).message(2, shape);
  return new Message().string(1, info.name).message(2, new Message().message(1, tensorType));
}

function tensor(init: Initializer): Message {
  const message = new Message();
  for (const dim of init.dims) message.int(1, dim);
  message.int(2, init.data instanceof Float32Array ? ELEM.float : ELEM.int64);
  message.string(8, init.name);
  // raw_data is little-endian, as onnx.proto specifies.
  const raw = new Uint8Array(init.data.byteLength);
  const view = new DataView(raw.buffer);
  init.data.forEach((value: number | bigint, i: number) => {
    if (typeof value === 'bigint') view.setBigInt64(i * 8, value, true);
    else view.setFloat32(i * 4, value, true);
  });
  return message.bytes(9, raw);
}

function node(spec: Node, index: number): Message {
  const message = new Message();
  for (const input of spec.inputs) message.string(1, input);
  for (const output of spec.outputs) message.string(2, output);
  message.string(3, `${spec.opType.toLowerCase()}_${index}`);
  message.string(4, spec.opType);
  for (const [name, value] of Object.entries(spec.attributes ?? {})) {
    // AttributeProto: name = 1, i = 3, type = 20 (INT = 2).
    message.message(5, new Message().string(1, name).int(3, value).int(20, 2));
  }
  return message;
}

/** The serialized `ModelProto` of `graph`, loadable by onnxruntime. */
export function encodeOnnxModel(graph: Graph): Uint8Array {
  const g = new Message();
  graph.nodes.forEach((n, i) => {
    g.message(1, node(n, i));
  });
  g.string(2, 'sluice-test-graph');
  for (const init of graph.initializers) g.message(5, tensor(init));
  for (const input of graph.inputs) g.message(11, valueInfo(input));
  for (const output of graph.outputs) g.message(12, valueInfo(output));
  return new Message()
    .int(1, 8) // ir_version
    .string(2, 'sluice-tests') // producer_name
    .message(7, g)
    .message(8, new Message().string(1, '').int(2, graph.opset ?? 14))
    .encode();
}
