// What wasm_jpeg.ts uses of the WebAssembly JS API, which @types/node 20 does not declare.
declare global {
  namespace WebAssembly {
    class Memory {
      readonly buffer: ArrayBuffer;
    }
    class Module {
      constructor(bytes: ArrayBufferView | ArrayBuffer);
    }
    class Instance {
      constructor(module: Module, imports: Record<string, Record<string, unknown>>);
      readonly exports: Record<string, unknown>;
    }
  }
}
export {};
