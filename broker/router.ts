// Router: takes a delivery to the node that holds the receiver's devices. Routing is by receiver: one
// message crosses at most one hop. This node's router delivers to local devices; a cluster router puts a
// Redis hop in front of it (DESIGN.md, "Scaling out").
import type { Device, DeviceRegistry, Delivery } from './devices.ts';

export interface Router {
  /** Delivers to every online device of the user, except `except` (the sending device). */
  deliver(userId: string, delivery: Delivery, except?: Device): void;
}

export class LocalRouter implements Router {
  constructor(private readonly devices: DeviceRegistry) {}

  deliver(userId: string, delivery: Delivery, except?: Device): void {
    for (const device of this.devices.online(userId)) if (device !== except) device.deliver(delivery);
  }
}
