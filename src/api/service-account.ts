/** Where a pod's service account token, CA and namespace are mounted (the kubelet's projected volume). */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount'
