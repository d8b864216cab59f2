package web

import (
	"net/http"
	"slices"

	"github.com/kephs/kep/mailbox"
)

// Message actions: move to another standard folder (Archive, Trash, back
// to INBOX…) and, in Trash, delete for good. The mailbox decides which
// grant each needs (docs/mailbox-rules.md: moving into Archive needs the
// archive grant, out of a folder otherwise the delete grant); a refusal is
// shown with its reason. Deleting removes the content; the evidence and
// its digests remain.

// moveTargets are the folders a message can be moved into from the page.
var moveTargets = []mailbox.Role{mailbox.RoleInbox, mailbox.RoleArchive, mailbox.RoleTrash}

func (s *Server) move(w http.ResponseWriter, r *http.Request, c *reqCtx) {
	a, f, m, ok := s.message(w, r, c)
	if !ok {
		return
	}
	to := mailbox.Role(r.PostFormValue("hedef"))
	if !slices.Contains(moveTargets, to) || to == f.Role() {
		s.fail(w, r, c, http.StatusBadRequest, c.t("err.target"))
		return
	}
	dst, err := s.Mailbox.FolderByRole(r.Context(), c.p, a, to)
	if err != nil {
		s.refused(w, r, c, err)
		return
	}
	if _, err := s.Mailbox.Move(r.Context(), c.p, f, []uint32{m.UID}, dst); err != nil {
		s.refused(w, r, c, err)
		return
	}
	http.Redirect(w, r, folderURL(a.Address, f.Role()), http.StatusSeeOther)
}

func (s *Server) remove(w http.ResponseWriter, r *http.Request, c *reqCtx) {
	a, f, m, ok := s.message(w, r, c)
	if !ok {
		return
	}
	if f.Role() != mailbox.RoleTrash {
		s.fail(w, r, c, http.StatusConflict, c.t("err.trashfirst"))
		return
	}
	if err := s.Mailbox.RemoveMessages(r.Context(), c.p, f, []uint32{m.UID}); err != nil {
		s.refused(w, r, c, err)
		return
	}
	http.Redirect(w, r, folderURL(a.Address, f.Role()), http.StatusSeeOther)
}
