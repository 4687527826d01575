"""Go `encoding/json` field order of `corev1.Pod` and the types it reaches. Generated.

Written by hack/core-goldens/gen_pod_fields.py from a Kubernetes 1.20 tree, plus the
optional fields added since (listed there). Each type is `name[?]:type` entries in Go
declaration order, `?` marking `omitempty`; types: s i b f any, @Struct, *X, []X, {}X
(map by string), !Name (own MarshalJSON: Time, Quantity, IntOrString, ...); then
`/strategy=mergeKey` where the field has strategic-merge-patch tags.
"""

from typing import Final

POD_FIELDS: Final[dict[str, str]] = {
    "AWSElasticBlockStoreVolumeSource": "volumeID:s fsType?:s partition?:i readOnly?:b",
    "Affinity": (
        "nodeAffinity?:*@NodeAffinity podAffinity?:*@PodAffinity podAntiAffinity?:*@PodAntiAffinity"
    ),
    "AppArmorProfile": "type:s localhostProfile?:*s",
    "AzureDiskVolumeSource": (
        "diskName:s diskURI:s cachingMode?:*s fsType?:*s readOnly?:*b kind?:*s"
    ),
    "AzureFileVolumeSource": "secretName:s shareName:s readOnly?:b",
    "CSIVolumeSource": (
        "driver:s readOnly?:*b fsType?:*s volumeAttributes?:{}s "
        "nodePublishSecretRef?:*@LocalObjectReference"
    ),
    "Capabilities": "add?:[]s drop?:[]s",
    "CephFSVolumeSource": (
        "monitors:[]s path?:s user?:s secretFile?:s secretRef?:*@LocalObjectReference readOnly?:b"
    ),
    "CinderVolumeSource": "volumeID:s fsType?:s readOnly?:b secretRef?:*@LocalObjectReference",
    "ConfigMapEnvSource": "name?:s optional?:*b",
    "ConfigMapKeySelector": "name?:s key:s optional?:*b",
    "ConfigMapProjection": "name?:s items?:[]@KeyToPath optional?:*b",
    "ConfigMapVolumeSource": "name?:s items?:[]@KeyToPath defaultMode?:*i optional?:*b",
    "Container": (
        "name:s image?:s command?:[]s args?:[]s workingDir?:s "
        "ports?:[]@ContainerPort/merge=containerPort envFrom?:[]@EnvFromSource "
        "env?:[]@EnvVar/merge=name resources?:@ResourceRequirements "
        "resizePolicy?:[]@ContainerResizePolicy restartPolicy?:*s restartPolicyRules?:[]any "
        "volumeMounts?:[]@VolumeMount/merge=mountPath "
        "volumeDevices?:[]@VolumeDevice/merge=devicePath livenessProbe?:*@Probe "
        "readinessProbe?:*@Probe startupProbe?:*@Probe lifecycle?:*@Lifecycle "
        "terminationMessagePath?:s terminationMessagePolicy?:s imagePullPolicy?:s "
        "securityContext?:*@SecurityContext stdin?:b stdinOnce?:b tty?:b"
    ),
    "ContainerPort": "name?:s hostPort?:i containerPort:i protocol?:s hostIP?:s",
    "ContainerResizePolicy": "resourceName:s restartPolicy:s",
    "ContainerState": (
        "waiting?:*@ContainerStateWaiting running?:*@ContainerStateRunning "
        "terminated?:*@ContainerStateTerminated"
    ),
    "ContainerStateRunning": "startedAt?:!Time",
    "ContainerStateTerminated": (
        "exitCode:i signal?:i reason?:s message?:s startedAt?:!Time finishedAt?:!Time "
        "containerID?:s"
    ),
    "ContainerStateWaiting": "reason?:s message?:s",
    "ContainerStatus": (
        "name:s state?:@ContainerState lastState?:@ContainerState ready:b restartCount:i image:s "
        "imageID:s containerID?:s started?:*b"
    ),
    "DownwardAPIProjection": "items?:[]@DownwardAPIVolumeFile",
    "DownwardAPIVolumeFile": (
        "path:s fieldRef?:*@ObjectFieldSelector resourceFieldRef?:*@ResourceFieldSelector mode?:*i"
    ),
    "DownwardAPIVolumeSource": "items?:[]@DownwardAPIVolumeFile defaultMode?:*i",
    "EmptyDirVolumeSource": "medium?:s sizeLimit?:*!Quantity",
    "EnvFromSource": "prefix?:s configMapRef?:*@ConfigMapEnvSource secretRef?:*@SecretEnvSource",
    "EnvVar": "name:s value?:s valueFrom?:*@EnvVarSource",
    "EnvVarSource": (
        "fieldRef?:*@ObjectFieldSelector resourceFieldRef?:*@ResourceFieldSelector "
        "configMapKeyRef?:*@ConfigMapKeySelector secretKeyRef?:*@SecretKeySelector "
        "fileKeyRef?:any"
    ),
    "EphemeralContainer": (
        "name:s image?:s command?:[]s args?:[]s workingDir?:s ports?:[]@ContainerPort "
        "envFrom?:[]@EnvFromSource env?:[]@EnvVar/merge=name resources?:@ResourceRequirements "
        "resizePolicy?:[]@ContainerResizePolicy restartPolicy?:*s restartPolicyRules?:[]any "
        "volumeMounts?:[]@VolumeMount/merge=mountPath "
        "volumeDevices?:[]@VolumeDevice/merge=devicePath livenessProbe?:*@Probe "
        "readinessProbe?:*@Probe startupProbe?:*@Probe lifecycle?:*@Lifecycle "
        "terminationMessagePath?:s terminationMessagePolicy?:s imagePullPolicy?:s "
        "securityContext?:*@SecurityContext stdin?:b stdinOnce?:b tty?:b targetContainerName?:s"
    ),
    "EphemeralVolumeSource": "volumeClaimTemplate?:*@PersistentVolumeClaimTemplate readOnly?:b",
    "ExecAction": "command?:[]s",
    "FCVolumeSource": "targetWWNs?:[]s lun?:*i fsType?:s readOnly?:b wwids?:[]s",
    "FlexVolumeSource": (
        "driver:s fsType?:s secretRef?:*@LocalObjectReference readOnly?:b options?:{}s"
    ),
    "FlockerVolumeSource": "datasetName?:s datasetUUID?:s",
    "GCEPersistentDiskVolumeSource": "pdName:s fsType?:s partition?:i readOnly?:b",
    "GRPCAction": "port:i service:*s",
    "GitRepoVolumeSource": "repository:s revision?:s directory?:s",
    "GlusterfsVolumeSource": "endpoints:s path:s readOnly?:b",
    "HTTPGetAction": "path?:s port:!IntOrString host?:s scheme?:s httpHeaders?:[]@HTTPHeader",
    "HTTPHeader": "name:s value:s",
    "Handler": (
        "exec?:*@ExecAction httpGet?:*@HTTPGetAction tcpSocket?:*@TCPSocketAction "
        "sleep?:*@SleepAction"
    ),
    "HostAlias": "ip?:s hostnames?:[]s",
    "HostPathVolumeSource": "path:s type?:*s",
    "ISCSIVolumeSource": (
        "targetPortal:s iqn:s lun:i iscsiInterface?:s fsType?:s readOnly?:b portals?:[]s "
        "chapAuthDiscovery?:b chapAuthSession?:b secretRef?:*@LocalObjectReference "
        "initiatorName?:*s"
    ),
    "ImageVolumeSource": "reference?:s pullPolicy?:s",
    "KeyToPath": "key:s path:s mode?:*i",
    "LabelSelector": "matchLabels?:{}s matchExpressions?:[]@LabelSelectorRequirement",
    "LabelSelectorRequirement": "key:s/merge=key operator:s values?:[]s",
    "Lifecycle": "postStart?:*@Handler preStop?:*@Handler stopSignal?:*s",
    "LocalObjectReference": "name?:s",
    "ManagedFieldsEntry": (
        "manager?:s operation?:s apiVersion?:s time?:*!Time fieldsType?:s fieldsV1?:*!FieldsV1"
    ),
    "NFSVolumeSource": "server:s path:s readOnly?:b",
    "NodeAffinity": (
        "requiredDuringSchedulingIgnoredDuringExecution?:*@NodeSelector "
        "preferredDuringSchedulingIgnoredDuringExecution?:[]@PreferredSchedulingTerm"
    ),
    "NodeSelector": "nodeSelectorTerms:[]@NodeSelectorTerm",
    "NodeSelectorRequirement": "key:s operator:s values?:[]s",
    "NodeSelectorTerm": (
        "matchExpressions?:[]@NodeSelectorRequirement matchFields?:[]@NodeSelectorRequirement"
    ),
    "ObjectFieldSelector": "apiVersion?:s fieldPath:s",
    "ObjectMeta": (
        "name?:s generateName?:s namespace?:s selfLink?:s uid?:s resourceVersion?:s generation?:i "
        "creationTimestamp?:!Time deletionTimestamp?:*!Time deletionGracePeriodSeconds?:*i "
        "labels?:{}s annotations?:{}s ownerReferences?:[]@OwnerReference/merge=uid "
        "finalizers?:[]s/merge= clusterName?:s managedFields?:[]@ManagedFieldsEntry"
    ),
    "OwnerReference": "apiVersion:s kind:s name:s uid:s controller?:*b blockOwnerDeletion?:*b",
    "PersistentVolumeClaimSpec": (
        "accessModes?:[]s selector?:*@LabelSelector resources?:@ResourceRequirements "
        "volumeName?:s storageClassName?:*s volumeMode?:*s "
        "dataSource?:*@TypedLocalObjectReference"
    ),
    "PersistentVolumeClaimTemplate": "metadata?:@ObjectMeta spec:@PersistentVolumeClaimSpec",
    "PersistentVolumeClaimVolumeSource": "claimName:s readOnly?:b",
    "PhotonPersistentDiskVolumeSource": "pdID:s fsType?:s",
    "Pod": "kind?:s apiVersion?:s metadata?:@ObjectMeta spec?:@PodSpec status?:@PodStatus",
    "PodAffinity": (
        "requiredDuringSchedulingIgnoredDuringExecution?:[]@PodAffinityTerm "
        "preferredDuringSchedulingIgnoredDuringExecution?:[]@WeightedPodAffinityTerm"
    ),
    "PodAffinityTerm": (
        "labelSelector?:*@LabelSelector namespaces?:[]s topologyKey:s "
        "namespaceSelector?:*@LabelSelector matchLabelKeys?:[]s mismatchLabelKeys?:[]s"
    ),
    "PodAntiAffinity": (
        "requiredDuringSchedulingIgnoredDuringExecution?:[]@PodAffinityTerm "
        "preferredDuringSchedulingIgnoredDuringExecution?:[]@WeightedPodAffinityTerm"
    ),
    "PodCondition": (
        "type:s status:s lastProbeTime?:!Time lastTransitionTime?:!Time reason?:s message?:s"
    ),
    "PodDNSConfig": "nameservers?:[]s searches?:[]s options?:[]@PodDNSConfigOption",
    "PodDNSConfigOption": "name?:s value?:*s",
    "PodIP": "ip?:s",
    "PodOS": "name:s",
    "PodReadinessGate": "conditionType:s",
    "PodResourceClaim": "name:s resourceClaimName?:*s resourceClaimTemplateName?:*s",
    "PodSchedulingGate": "name:s",
    "PodSecurityContext": (
        "seLinuxOptions?:*@SELinuxOptions windowsOptions?:*@WindowsSecurityContextOptions "
        "runAsUser?:*i runAsGroup?:*i runAsNonRoot?:*b supplementalGroups?:[]i "
        "supplementalGroupsPolicy?:*s fsGroup?:*i sysctls?:[]@Sysctl fsGroupChangePolicy?:*s "
        "seccompProfile?:*@SeccompProfile appArmorProfile?:*@AppArmorProfile "
        "seLinuxChangePolicy?:*s"
    ),
    "PodSpec": (
        "volumes?:[]@Volume/merge,retainKeys=name initContainers?:[]@Container/merge=name "
        "containers:[]@Container/merge=name ephemeralContainers?:[]@EphemeralContainer/merge=name "
        "restartPolicy?:s terminationGracePeriodSeconds?:*i activeDeadlineSeconds?:*i "
        "dnsPolicy?:s nodeSelector?:{}s serviceAccountName?:s serviceAccount?:s "
        "automountServiceAccountToken?:*b nodeName?:s hostNetwork?:b hostPID?:b hostIPC?:b "
        "shareProcessNamespace?:*b securityContext?:*@PodSecurityContext "
        "imagePullSecrets?:[]@LocalObjectReference/merge=name hostname?:s subdomain?:s "
        "affinity?:*@Affinity schedulerName?:s tolerations?:[]@Toleration "
        "hostAliases?:[]@HostAlias/merge=ip priorityClassName?:s priority?:*i "
        "dnsConfig?:*@PodDNSConfig readinessGates?:[]@PodReadinessGate runtimeClassName?:*s "
        "enableServiceLinks?:*b preemptionPolicy?:*s overhead?:{}!Quantity "
        "topologySpreadConstraints?:[]@TopologySpreadConstraint/merge=topologyKey "
        "setHostnameAsFQDN?:*b os?:*@PodOS hostUsers?:*b "
        "schedulingGates?:[]@PodSchedulingGate/merge=name "
        "resourceClaims?:[]@PodResourceClaim/merge,retainKeys=name "
        "resources?:*@ResourceRequirements hostnameOverride?:*s"
    ),
    "PodStatus": (
        "phase?:s conditions?:[]@PodCondition/merge=type message?:s reason?:s "
        "nominatedNodeName?:s hostIP?:s podIP?:s podIPs?:[]@PodIP/merge=ip startTime?:*!Time "
        "initContainerStatuses?:[]@ContainerStatus containerStatuses?:[]@ContainerStatus "
        "qosClass?:s ephemeralContainerStatuses?:[]@ContainerStatus"
    ),
    "PortworxVolumeSource": "volumeID:s fsType?:s readOnly?:b",
    "PreferredSchedulingTerm": "weight:i preference:@NodeSelectorTerm",
    "Probe": (
        "exec?:*@ExecAction httpGet?:*@HTTPGetAction tcpSocket?:*@TCPSocketAction "
        "grpc?:*@GRPCAction initialDelaySeconds?:i timeoutSeconds?:i periodSeconds?:i "
        "successThreshold?:i failureThreshold?:i terminationGracePeriodSeconds?:*i"
    ),
    "ProjectedVolumeSource": "sources:[]@VolumeProjection defaultMode?:*i",
    "QuobyteVolumeSource": "registry:s volume:s readOnly?:b user?:s group?:s tenant?:s",
    "RBDVolumeSource": (
        "monitors:[]s image:s fsType?:s pool?:s user?:s keyring?:s "
        "secretRef?:*@LocalObjectReference readOnly?:b"
    ),
    "ResourceClaim": "name:s request?:s",
    "ResourceFieldSelector": "containerName?:s resource:s divisor?:!Quantity",
    "ResourceRequirements": "limits?:{}!Quantity requests?:{}!Quantity claims?:[]@ResourceClaim",
    "SELinuxOptions": "user?:s role?:s type?:s level?:s",
    "ScaleIOVolumeSource": (
        "gateway:s system:s secretRef:*@LocalObjectReference sslEnabled?:b protectionDomain?:s "
        "storagePool?:s storageMode?:s volumeName?:s fsType?:s readOnly?:b"
    ),
    "SeccompProfile": "type:s localhostProfile?:*s",
    "SecretEnvSource": "name?:s optional?:*b",
    "SecretKeySelector": "name?:s key:s optional?:*b",
    "SecretProjection": "name?:s items?:[]@KeyToPath optional?:*b",
    "SecretVolumeSource": "secretName?:s items?:[]@KeyToPath defaultMode?:*i optional?:*b",
    "SecurityContext": (
        "capabilities?:*@Capabilities privileged?:*b seLinuxOptions?:*@SELinuxOptions "
        "windowsOptions?:*@WindowsSecurityContextOptions runAsUser?:*i runAsGroup?:*i "
        "runAsNonRoot?:*b readOnlyRootFilesystem?:*b allowPrivilegeEscalation?:*b procMount?:*s "
        "seccompProfile?:*@SeccompProfile appArmorProfile?:*@AppArmorProfile"
    ),
    "ServiceAccountTokenProjection": "audience?:s expirationSeconds?:*i path:s",
    "SleepAction": "seconds:i",
    "StorageOSVolumeSource": (
        "volumeName?:s volumeNamespace?:s fsType?:s readOnly?:b secretRef?:*@LocalObjectReference"
    ),
    "Sysctl": "name:s value:s",
    "TCPSocketAction": "port:!IntOrString host?:s",
    "Toleration": "key?:s operator?:s value?:s effect?:s tolerationSeconds?:*i",
    "TopologySpreadConstraint": (
        "maxSkew:i topologyKey:s whenUnsatisfiable:s labelSelector?:*@LabelSelector "
        "minDomains?:*i nodeAffinityPolicy?:*s nodeTaintsPolicy?:*s matchLabelKeys?:[]s"
    ),
    "TypedLocalObjectReference": "apiGroup:*s kind:s name:s",
    "Volume": (
        "name:s hostPath?:*@HostPathVolumeSource emptyDir?:*@EmptyDirVolumeSource "
        "gcePersistentDisk?:*@GCEPersistentDiskVolumeSource "
        "awsElasticBlockStore?:*@AWSElasticBlockStoreVolumeSource gitRepo?:*@GitRepoVolumeSource "
        "secret?:*@SecretVolumeSource nfs?:*@NFSVolumeSource iscsi?:*@ISCSIVolumeSource "
        "glusterfs?:*@GlusterfsVolumeSource "
        "persistentVolumeClaim?:*@PersistentVolumeClaimVolumeSource rbd?:*@RBDVolumeSource "
        "flexVolume?:*@FlexVolumeSource cinder?:*@CinderVolumeSource cephfs?:*@CephFSVolumeSource "
        "flocker?:*@FlockerVolumeSource downwardAPI?:*@DownwardAPIVolumeSource "
        "fc?:*@FCVolumeSource azureFile?:*@AzureFileVolumeSource "
        "configMap?:*@ConfigMapVolumeSource vsphereVolume?:*@VsphereVirtualDiskVolumeSource "
        "quobyte?:*@QuobyteVolumeSource azureDisk?:*@AzureDiskVolumeSource "
        "photonPersistentDisk?:*@PhotonPersistentDiskVolumeSource "
        "projected?:*@ProjectedVolumeSource portworxVolume?:*@PortworxVolumeSource "
        "scaleIO?:*@ScaleIOVolumeSource storageos?:*@StorageOSVolumeSource csi?:*@CSIVolumeSource "
        "ephemeral?:*@EphemeralVolumeSource image?:*@ImageVolumeSource"
    ),
    "VolumeDevice": "name:s devicePath:s",
    "VolumeMount": (
        "name:s readOnly?:b recursiveReadOnly?:*s mountPath:s subPath?:s mountPropagation?:*s "
        "subPathExpr?:s"
    ),
    "VolumeProjection": (
        "secret?:*@SecretProjection downwardAPI?:*@DownwardAPIProjection "
        "configMap?:*@ConfigMapProjection serviceAccountToken?:*@ServiceAccountTokenProjection"
    ),
    "VsphereVirtualDiskVolumeSource": (
        "volumePath:s fsType?:s storagePolicyName?:s storagePolicyID?:s"
    ),
    "WeightedPodAffinityTerm": "weight:i podAffinityTerm:@PodAffinityTerm",
    "WindowsSecurityContextOptions": (
        "gmsaCredentialSpecName?:*s gmsaCredentialSpec?:*s runAsUserName?:*s"
    ),
}
