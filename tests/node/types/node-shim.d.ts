// The little of @types/node that index.d.ts and sample.ts use, for machines without it.
declare module 'node:events' {
  export class EventEmitter {
    on(eventName: string | symbol, listener: (...args: any[]) => void): this;
    once(eventName: string | symbol, listener: (...args: any[]) => void): this;
    off(eventName: string | symbol, listener: (...args: any[]) => void): this;
    emit(eventName: string | symbol, ...args: any[]): boolean;
  }
}
interface AbortSignal { readonly aborted: boolean; readonly reason: any }
declare var AbortController: { new (): { readonly signal: AbortSignal; abort(reason?: any): void } };
declare var console: { log(...args: any[]): void; error(...args: any[]): void };
