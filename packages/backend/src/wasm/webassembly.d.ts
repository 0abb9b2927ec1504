// The few WebAssembly JS API types used here; @types/node 20 does not declare them (lib.dom does).
declare global {
  namespace WebAssembly {
    class Memory {
      constructor(descriptor: { initial: number; maximum?: number });
      readonly buffer: ArrayBuffer;
      grow(delta: number): number;
    }
    class Module {
      constructor(bytes: ArrayBufferView | ArrayBuffer);
      static imports(module: Module): { module: string; name: string; kind: string }[];
      static exports(module: Module): { name: string; kind: string }[];
    }
    class Instance {
      constructor(module: Module, imports?: Record<string, Record<string, unknown>>);
      readonly exports: Record<string, unknown>;
    }
  }
}
export {};
