// The docker driver (see driver.ts). Not wired into the manifest, planner or daemon yet: it takes
// its own ContainerSpec.
export { DockerDriver, type DockerDriverOptions, type DockerStartOptions, type OwnedContainer } from './driver.js';
export { DockerError, DockerErrorCode } from './errors.js';
export { type ConnectionState, type DockerEvent, type DockerEventAction, type WatchOptions } from './events.js';
export { Label } from './labels.js';
export { containerName, specDigest, type BindMount, type ContainerResources, type ContainerSpec, type PortBinding } from './spec.js';
export { type HealthStatus } from './state.js';
