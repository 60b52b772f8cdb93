"""The web app: the API plus the pages, one ASGI app (``complaints serve`` runs it)."""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware

from complaints.api.app import create_app, make_context
from complaints.api.deps import ApiContext
from complaints.api.problems import Problem, problem_response
from complaints.identity import AccessDenied
from complaints.settings import Settings
from complaints.web import auth, import_page, learning_pages, pages

HERE = Path(__file__).resolve().parent
#: How long a signed-in session lasts without signing in again (a working day and a bit).
SESSION_SECONDS = 10 * 60 * 60

_HEADINGS = {401: "Sign in first", 403: "You cannot do that", 404: "Page not found",
             409: "Not done", 422: "Something needs fixing", 503: "Not available just now"}


def create_web_app(settings: Settings | None = None, *,
                   context: ApiContext | None = None) -> FastAPI:
    """The API and the staff pages for one deployment.

    Args:
        settings: The settings (default: from the environment).
        context: A ready context (tests give one with their Temporal client).

    """
    context = context or make_context(settings or Settings())
    chosen = context.settings
    app = create_app(context=context)
    secret = chosen.session_secret or (secrets.token_urlsafe(32) if chosen.dev_sign_in
                                       else None)
    if secret is None:
        raise RuntimeError("SESSION_SECRET is not set: the web app signs its session "
                           "cookies with it (32 or more random characters)")
    https = (chosen.public_url or "").startswith("https://")
    app.add_middleware(SessionMiddleware, secret_key=secret, session_cookie="complaints",
                       max_age=SESSION_SECONDS, same_site="lax", https_only=https)
    app.state.templates = Jinja2Templates(directory=HERE / "templates")
    auth.register_oidc(app, chosen)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(auth.router)
    app.include_router(pages.router)
    app.include_router(learning_pages.router)
    app.include_router(import_page.router)
    _install_page_errors(app)
    return app


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _install_page_errors(app: FastAPI) -> None:
    """Errors on pages are pages (the API keeps its problem details)."""

    def error_page(request: Request, status: int, detail: str) -> Response:
        templates: Jinja2Templates = request.app.state.templates
        return templates.TemplateResponse(
            request, "error.html", {"user": None, "csrf": "", "nav": [], "path": "",
                                    "title": _HEADINGS.get(status, "Error"),
                                    "heading": _HEADINGS.get(status, "Error"),
                                    "detail": detail, "status": status},
            status_code=status)

    @app.exception_handler(auth.SignInRequired)
    async def _sign_in(request: Request, exc: auth.SignInRequired) -> Response:
        return RedirectResponse(f"/auth/login?next={exc.next_path}", status_code=303)

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        if _is_api(request):
            return problem_response(exc.status, exc.detail, instance=request.url.path,
                                    type_key=exc.type_key, headers=exc.headers, **exc.extra)
        return error_page(request, exc.status, exc.detail)

    @app.exception_handler(AccessDenied)
    async def _denied(request: Request, exc: AccessDenied) -> Response | JSONResponse:
        if _is_api(request):
            headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} \
                if exc.status == 401 else None
            return problem_response(exc.status, exc.detail, instance=request.url.path,
                                    headers=headers)
        return error_page(request, exc.status, exc.detail)
