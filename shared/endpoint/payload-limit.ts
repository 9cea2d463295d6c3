/**
 * SageMaker's limit on one InvokeEndpoint request body (6 MB). The endpoint client splits
 * a batch whose JSON would exceed it, and the local model server refuses a larger body, so
 * a batch that works locally also fits the deployed endpoint.
 */
export const MAX_INVOKE_PAYLOAD_BYTES = 6 * 1024 * 1024;
