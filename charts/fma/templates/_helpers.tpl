{{/*
Names, labels, the image, the cross-object names and the Kubernetes-version switches.
Every name another template or object refers to is defined here exactly once.
*/}}

{{- define "fma.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-fma, or the release name when it already contains the chart name. */}}
{{- define "fma.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "fma.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of one component: (dict "ctx" $ "component" "webhook"). */}}
{{- define "fma.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fma.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All labels of an object of one component: (dict "ctx" $ "component" "webhook"). */}}
{{- define "fma.labels" -}}
{{ include "fma.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: fma
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ include "fma.chart" .ctx }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The one fma image: repository@digest, else repository:tag (tag defaults to appVersion). */}}
{{- define "fma.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* ----- names shared between objects ----- */}}

{{/* The webhook's Deployment, Service, ServiceAccount, and both webhook configurations. */}}
{{- define "fma.webhookName" -}}
{{- printf "%s-webhook" (include "fma.fullname" .) }}
{{- end }}

{{- define "fma.controllerName" -}}
{{- printf "%s-controller" (include "fma.fullname" .) }}
{{- end }}

{{/*
The controllers' ServiceAccount. Its name is part of the wire contract (contracts §2.4,
`<release>-fma-controllers`): the Pod guard exempts exactly this identity.
*/}}
{{- define "fma.controllersServiceAccountName" -}}
{{- printf "%s-fma-controllers" .Release.Name }}
{{- end }}

{{/* Usernames the Pod guard lets write controller-owned Pod metadata. */}}
{{- define "fma.controllerUsernames" -}}
{{- $own := printf "system:serviceaccount:%s:%s" .Release.Namespace (include "fma.controllersServiceAccountName" .) }}
{{- toJson (concat (list $own) .Values.webhook.extraControllerUsernames | uniq) }}
{{- end }}

{{/* The serving Secret (tls.crt, tls.key, ca.crt), whoever issues it. */}}
{{- define "fma.tlsSecretName" -}}
{{- printf "%s-webhook-tls" (include "fma.fullname" .) }}
{{- end }}

{{/* The CA Secret of self-managed mode (fma-certs' default: <serving Secret>-ca). */}}
{{- define "fma.selfManagedCaSecretName" -}}
{{- printf "%s-ca" (include "fma.tlsSecretName" .) }}
{{- end }}

{{/* The controller's control credential Secret (tls.key, tls.crt, ca.crt), whoever issues it:
mounted whole by the controller, only its ca.crt by the webhook. */}}
{{- define "fma.controlSecretName" -}}
{{- printf "%s-control" (include "fma.fullname" .) }}
{{- end }}

{{/* The control CA's Secret: fma-certs' default (<credential Secret>-ca) in self-managed mode,
the CA Certificate's Secret in cert-manager mode. Never mounted by a Pod. */}}
{{- define "fma.controlCaSecretName" -}}
{{- printf "%s-ca" (include "fma.controlSecretName" .) }}
{{- end }}

{{- define "fma.certsName" -}}
{{- printf "%s-certs" (include "fma.fullname" .) }}
{{- end }}

{{/* The cert-manager Certificate of the webhook (the configurations' inject-ca-from). */}}
{{- define "fma.certificateName" -}}
{{- printf "%s-webhook" (include "fma.fullname" .) }}
{{- end }}

{{/* Every DNS name of the webhook Service (what certs.bundle.service_dns_names gives). */}}
{{- define "fma.serviceDnsNames" -}}
{{- $svc := include "fma.webhookName" . }}
{{- $ns := .Release.Namespace }}
{{- toJson (list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain)) }}
{{- end }}

{{/* ----- what the target Kubernetes version supports ----- */}}

{{/* "true" from 1.21: policy/v1, batch/v1 CronJob, the kubernetes.io/metadata.name label. */}}
{{- define "fma.kube121" -}}
{{- if semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version }}true{{ end }}
{{- end }}

{{/* "true" from 1.28, where webhook matchConditions are on by default (beta; GA in 1.30). */}}
{{- define "fma.kube128" -}}
{{- if semverCompare ">=1.28-0" .Capabilities.KubeVersion.Version }}true{{ end }}
{{- end }}

{{- define "fma.pdbApiVersion" -}}
{{- if include "fma.kube121" . }}policy/v1{{ else }}policy/v1beta1{{ end }}
{{- end }}

{{- define "fma.cronJobApiVersion" -}}
{{- if include "fma.kube121" . }}batch/v1{{ else }}batch/v1beta1{{ end }}
{{- end }}

{{/* ----- Pod spec pieces ----- */}}

{{/* Anti-affinity spreading one component's replicas over nodes, unless `affinity` is given:
(dict "ctx" $ "component" "webhook" "values" .Values.webhook). */}}
{{- define "fma.affinity" -}}
{{- if .values.affinity }}
{{- toYaml .values.affinity }}
{{- else }}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" (include "fma.selectorLabels" . | fromYaml)) -}}
podAntiAffinity:
{{- if eq .values.podAntiAffinity "hard" }}
  requiredDuringSchedulingIgnoredDuringExecution:
    {{- toYaml (list $term) | nindent 4 }}
{{- else }}
  preferredDuringSchedulingIgnoredDuringExecution:
    {{- toYaml (list (dict "weight" 100 "podAffinityTerm" $term)) | nindent 4 }}
{{- end }}
{{- end }}
{{- end }}

{{/* Scheduling and security settings shared by the webhook and controller Pods:
(dict "ctx" $ "component" "webhook" "values" .Values.webhook). */}}
{{- define "fma.podScheduling" -}}
securityContext:
  {{- toYaml .ctx.Values.podSecurityContext | nindent 2 }}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
affinity:
  {{- include "fma.affinity" . | nindent 2 }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* ----- checks ----- */}}

{{- define "fma.validate" -}}
{{- if eq .Values.servedNamespace .Release.Namespace }}
{{- fail (printf "servedNamespace %q is the release namespace: the webhook never intercepts Pods of its own namespace, so fma would serve nothing there. Install the chart into a namespace of its own (e.g. -n fma-system) or set servedNamespace to the namespace of your vLLM workloads." .Values.servedNamespace) }}
{{- end }}
{{- if and (gt (int .Values.controller.replicas) 1) (not .Values.controller.leaderElection.enabled) }}
{{- fail "controller.replicas > 1 needs controller.leaderElection.enabled: without a Lease every replica would act on the same Pods." }}
{{- end }}
{{- end }}
