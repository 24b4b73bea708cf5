// Binary payloads made by other implementations, for Holdline's decoding
// tests: MessagePack by @msgpack/msgpack, CBOR by cborg, Protocol Buffers
// by protobufjs. One JSON argument, an array of requests; prints a JSON
// array with each payload as hex.
//
//   {"format": "msgpack" | "cbor", "value": V}
//   {"format": "protobuf", "proto": PATH, "message": NAME, "value": V}
//   {"format": "descriptor_set", "proto": PATH}   (a FileDescriptorSet)

import { encode as msgpack } from '@msgpack/msgpack';
import { encode as cbor } from 'cborg';
import protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor/index.js';

const requests = JSON.parse(process.argv[2]);
const out = [];
for (const request of requests) {
  let bytes;
  switch (request.format) {
    case 'msgpack':
      bytes = msgpack(request.value);
      break;
    case 'cbor':
      bytes = cbor(request.value);
      break;
    case 'protobuf': {
      const root = protobuf.loadSync(request.proto);
      const type = root.lookupType(request.message);
      const problem = type.verify(request.value);
      if (problem) throw new Error(problem);
      bytes = type.encode(type.fromObject(request.value)).finish();
      break;
    }
    case 'descriptor_set': {
      const root = protobuf.loadSync(request.proto);
      const set = root.toDescriptor('proto3');
      bytes = descriptor.FileDescriptorSet.encode(set).finish();
      break;
    }
    default:
      throw new Error(`unknown format ${request.format}`);
  }
  out.push(Buffer.from(bytes).toString('hex'));
}
process.stdout.write(JSON.stringify(out) + '\n');
