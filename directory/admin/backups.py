"""Backup and restore of a pool's users: the users changelist's backup actions, the backup and restore
pages (under the bulk jobs, and ready for the pool page: `pool_urls`), and the backup's download."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from ..models import BulkJob, CognitoGroup, CognitoUser, UserPool
from ..services import backup as backup_services
from ..services import restore as restore_services

BACKUP_PERMISSION = "directory.backup_cognitouser"
RESTORE_PERMISSION = "directory.restore_cognitouser"
# Uploads past this are refused with a form error (the file is kept in the database for the worker).
MAX_UPLOAD_BYTES = 512 * 1024 * 1024


class BackupForm(forms.Form):
    format = forms.ChoiceField(
        choices=[("json", "JSON (exact: one object per user)"), ("csv", "CSV (one row per group, then per user)")],
        initial="json", widget=forms.RadioSelect,
    )


class RestoreForm(forms.Form):
    pool = forms.ModelChoiceField(UserPool.objects.all(), help_text="The pool the users go into: this one or another.")
    backup_file = forms.FileField(help_text="A file made by “Back up users” (CSV or JSON).")
    existing = forms.ChoiceField(
        choices=[("skip", "Skip users the pool already has"),
                 ("update", "Update them: attributes, enabled, groups added (through the outbox)")],
        initial="skip", widget=forms.RadioSelect,
    )

    def clean_backup_file(self):
        upload = self.cleaned_data["backup_file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise ValidationError(f"backup_file: at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
        return upload


def _job_url(job: BulkJob) -> str:
    return reverse("admin:directory_bulkjob_change", args=[job.pk])


def _context(model_admin, request, title: str, **extra):
    return {**model_admin.admin_site.each_context(request), "title": title, "subtitle": None,
            "opts": model_admin.opts, **extra}


def backup_view(model_admin, request, object_id):
    """GET: what the backup holds and the format; POST: start the backup job, then its page."""
    if not request.user.has_perm(BACKUP_PERMISSION):
        raise PermissionDenied
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    pool = get_object_or_404(UserPool, pk=object_id) if str(object_id).isdigit() else None
    if pool is None:
        raise Http404(f"No pool with primary key {object_id!r}.")
    form = BackupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        job = backup_services.user_backup_start(
            pool=pool, fmt=form.cleaned_data["format"], actor=request.user.get_username()
        )
        model_admin.message_user(request, f"Backup of {pool.name or pool.pool_id} started; download it from this "
                                 "page when it is done.", messages.SUCCESS)
        return HttpResponseRedirect(_job_url(job))
    return TemplateResponse(request, "admin/directory/bulkjob/backup.html", _context(
        model_admin, request, f"Back up the users of {pool}", pool=pool, form=form,
        users=CognitoUser.objects.filter(pool=pool).count(), groups=CognitoGroup.objects.filter(pool=pool).count(),
    ))


def restore_view(model_admin, request, object_id=None):
    """GET: the upload form (the pool chosen when coming from one); POST: check the file and queue it."""
    if not request.user.has_perm(RESTORE_PERMISSION):
        raise PermissionDenied
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    initial = {}
    pool_pk = object_id or request.GET.get("pool")
    if pool_pk and str(pool_pk).isdigit():
        initial["pool"] = pool_pk
    form = RestoreForm(request.POST or None, request.FILES or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["backup_file"]
        try:
            job = restore_services.user_restore_start(
                pool=form.cleaned_data["pool"], content=upload.read(), file_name=upload.name,
                existing=form.cleaned_data["existing"], actor=request.user.get_username(),
            )
        except ValidationError as exc:
            for name, errors in exc.message_dict.items():
                form.add_error(name if name in form.fields else None, errors)
        else:
            model_admin.message_user(
                request, f"Restore of {job.total:,} user(s) into {job.pool} queued; it runs in the background.",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(_job_url(job))
    return TemplateResponse(request, "admin/directory/bulkjob/restore.html", _context(
        model_admin, request, "Restore users from a backup", form=form,
    ))


def download_view(model_admin, request, object_id):
    """The finished backup's file, streamed from its chunks; audited."""
    if not request.user.has_perm(BACKUP_PERMISSION):
        raise PermissionDenied
    job = get_object_or_404(BulkJob, pk=object_id) if str(object_id).isdigit() else None
    if job is None:
        raise Http404(f"No job with primary key {object_id!r}.")
    try:
        chunks = backup_services.backup_download(job=job, actor=request.user.get_username())
    except ValidationError as exc:
        model_admin.message_user(request, "; ".join(exc.messages), messages.ERROR)
        return HttpResponseRedirect(_job_url(job))
    fmt = job.params.get("format", "json")
    content_type = "text/csv; charset=utf-8" if fmt == "csv" else "application/json; charset=utf-8"
    response = StreamingHttpResponse(chunks, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{backup_services.backup_file_name(job)}"'
    return response


def bulkjob_urls(model_admin) -> list:
    """The bulk job admin's backup, restore and download pages."""
    site = model_admin.admin_site

    def view(func):
        return site.admin_view(lambda request, *args, **kwargs: func(model_admin, request, *args, **kwargs))

    return [
        path("userpool/<path:object_id>/backup/", view(backup_view), name="directory_bulkjob_backup"),
        path("restore/", view(restore_view), name="directory_bulkjob_restore"),
        path("<path:object_id>/download/", view(download_view), name="directory_bulkjob_download"),
    ]


def pool_urls(model_admin) -> list:
    """The same pages on a pool's own URLs (`userpool/<pk>/backup/`, `userpool/<pk>/restore/`), for
    UserPoolAdmin.get_urls: `*pool_urls(self),` before the default URLs."""
    site = model_admin.admin_site

    def view(func):
        return site.admin_view(lambda request, *args, **kwargs: func(model_admin, request, *args, **kwargs))

    return [
        path("<path:object_id>/backup/", view(backup_view), name="directory_userpool_backup"),
        path("<path:object_id>/restore/", view(restore_view), name="directory_userpool_restore"),
    ]


class BackupActionsMixin:
    """For the users' ModelAdmin: back up the pool of the selection (the whole pool, not only the rows)."""

    def has_backup_permission(self, request, obj=None):
        return request.user.has_perm(BACKUP_PERMISSION)

    def _backup(self, request, queryset, fmt: str):
        pool_ids = list(queryset.order_by().values_list("pool_id", flat=True).distinct()[:2])
        if len(pool_ids) != 1:
            self.message_user(request, "Back up one pool at a time: filter the list by pool first, then select "
                              "its users.", messages.ERROR)
            return None
        pool = UserPool.objects.get(pk=pool_ids[0])
        job = backup_services.user_backup_start(pool=pool, fmt=fmt, actor=request.user.get_username())
        self.message_user(request, f"Backup of every user of {pool.name or pool.pool_id} started ({fmt.upper()}); "
                          "download it from the job's page when it is done.", messages.SUCCESS)
        return HttpResponseRedirect(_job_url(job))

    @admin.action(permissions=["backup"], description="Back up all users of the selection's pool (JSON)")
    def backup_pool_json(self, request, queryset):
        return self._backup(request, queryset, "json")

    @admin.action(permissions=["backup"], description="Back up all users of the selection's pool (CSV)")
    def backup_pool_csv(self, request, queryset):
        return self._backup(request, queryset, "csv")
